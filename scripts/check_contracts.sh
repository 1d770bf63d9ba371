#!/usr/bin/env bash
# Contract checks: buf lint, and buf breaking against the image of the
# released v1 contracts (protos/released/v1.binpb). Any change that would
# break a bank's or the app backend's build, or the wire, fails here.
#
# To release a new compatible revision, rebuild the image after review:
#   (cd protos && buf build -o released/v1.binpb)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
buf="${BUF:-buf}"
cd "$root/protos"
"$buf" lint
"$buf" breaking --against released/v1.binpb
echo "contracts: buf lint and buf breaking passed"
