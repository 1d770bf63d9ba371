#!/usr/bin/env bash
# Generates the Python code of the contracts in protos/ into cardlookup/:
# message modules (*_pb2.py), typed stubs (*_pb2.pyi, grpcio-tools --pyi_out),
# gRPC stubs (*_pb2_grpc.py) and their typed stubs for sync and grpc.aio
# (*_pb2_grpc.pyi, mypy-protobuf --mypy_grpc_out).
#
#   scripts/gen_protos.sh           regenerate in place (idempotent)
#   scripts/gen_protos.sh --check   fail if the committed code is stale
#
# Needs the project's dev dependencies (grpcio-tools, mypy-protobuf).
# Only protos/cardlookup/ is generated: protos/google/rpc/ ships for non-Python
# clients, Python takes google.rpc from googleapis-common-protos.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"

generate() {  # $1 = output root
  local out="$1"
  local protos=()
  while IFS= read -r f; do protos+=("$f"); done < <(cd "$root/protos" && find cardlookup -name '*.proto' | LC_ALL=C sort)
  local dirs=()
  while IFS= read -r d; do dirs+=("$out/cardlookup/$d"); done < <(cd "$root/protos/cardlookup" && find . -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort)
  rm -rf "${dirs[@]}"
  mkdir -p "$out"
  # The mypy-protobuf plugins live beside the interpreter.
  PATH="$(dirname "$(command -v "$python")"):$PATH" \
    "$python" -m grpc_tools.protoc -I "$root/protos" \
      --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
      --mypy_grpc_out="$out" "${protos[@]/#/$root/protos/}"
  # Regular packages, so setuptools and mypy see them.
  find "${dirs[@]}" -type d -exec touch {}/__init__.py \;
}

if [[ "${1:-}" == "--check" ]]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  generate "$tmp"
  stale=0
  for d in "$tmp"/cardlookup/*/; do
    name="$(basename "$d")"
    diff -r -q --exclude=__pycache__ "$d" "$root/cardlookup/$name" || stale=1
  done
  if [[ $stale == 1 ]]; then
    echo "generated code in cardlookup/ is missing or stale: run scripts/gen_protos.sh" >&2
    exit 1
  fi
  echo "generated code is up to date"
else
  generate "$root"
fi
