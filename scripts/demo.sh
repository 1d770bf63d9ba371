#!/usr/bin/env bash
# The end-to-end demo: dev PKI, 16 simulated banks and the hub as separate
# processes, one user's lookup with live progress, the report checked
# against the population's ground truth; then everything stops.
# Needs only Python >= 3.11 and the package registry.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${VENV:-$root/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if true; then  # quick when already installed; picks up dependency changes
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e .
fi
exec "$venv/bin/cardlookup-demo" "$@"
