#!/usr/bin/env bash
# The replica demo (issue 8): a throwaway PostgreSQL, 16 simulated banks and
# three hub replicas on the one database; several users' lookups through the
# client spread over the replicas; replica B is SIGKILLed mid-way and
# restarted; prints which replica took over its banks, how long that took,
# and every report checked against the ground truth. Debian's postgresql is
# installed when missing (as scripts/test.sh does). Options: --users N, --keep.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/venv.sh
ensure_venv .
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "== installing PostgreSQL (the replicas share a throwaway server)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
exec "$py" -m devstack.replica_demo "$@"
