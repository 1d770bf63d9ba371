#!/usr/bin/env bash
# The end-to-end demo: dev PKI, 16 simulated banks and the hub as separate
# processes, one user's lookup with live progress, the report checked
# against the population's ground truth; then everything stops.
# Needs only Python >= 3.11 and the package registry.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/venv.sh
ensure_venv .
exec "$venv/bin/cardlookup-demo" "$@"
