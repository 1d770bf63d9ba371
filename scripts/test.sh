#!/usr/bin/env bash
# Sets up everything and runs the full test suite: the README's second
# command, and what CI runs (.ci/run). Safe to run again; only Python >= 3.11
# and the package registries are needed (Node.js/npm for the second bank
# implementation, Debian's postgresql for the store tests and SoftHSM2 for
# the PKCS#11 key-custody tests, and Debian's prometheus for promtool (the alert
# rules' checks), are installed here from Debian's packages
# when missing; no server needs to be running: tests start their own).
# Arguments go to pytest: `bash scripts/test.sh -m unit` runs the fast unit
# layer only (README "Development"); with none, the whole suite runs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/venv.sh
ensure_venv '.[dev]'

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "== installing PostgreSQL (store tests run on SQLite and on a throwaway PostgreSQL)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
echo "== generated code"
PYTHON="$py" scripts/gen_protos.sh --check
echo "== contracts"
BUF="$venv/bin/buf" scripts/check_contracts.sh
echo "== ruff"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
echo "== mypy"
"$venv/bin/mypy"
if [[ -f tests/node_bank/package.json ]]; then
  echo "== node bank dependencies"
  if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  (cd tests/node_bank && npm ci --silent --no-audit --no-fund)
fi
if [[ ! -e /usr/lib/softhsm/libsofthsm2.so ]] || ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "== softhsm2 (PKCS#11 tests)"
  apt-get update -qq && apt-get install -y -qq softhsm2 >/dev/null
fi
if ! command -v promtool >/dev/null 2>&1; then
  echo "== prometheus (promtool checks deploy/prometheus/)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
echo "== pytest"
"$py" -m pytest --durations=25 "$@"
