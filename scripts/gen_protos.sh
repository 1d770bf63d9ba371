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
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"

generate() {  # $1 = output root
  local out="$1"
  local protos=()
  while IFS= read -r f; do protos+=("$f"); done < <(cd "$root/protos" && find cardlookup -name '*.proto' | LC_ALL=C sort)
  rm -rf "$out/cardlookup/bank" "$out/cardlookup/hub"
  mkdir -p "$out"
  # The mypy-protobuf plugins live beside the interpreter.
  PATH="$(dirname "$(command -v "$python")"):$PATH" \
    "$python" -m grpc_tools.protoc -I "$root/protos" \
      --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
      --mypy_grpc_out="$out" "${protos[@]/#/$root/protos/}"
  # Regular packages, so setuptools and mypy see them.
  find "$out/cardlookup/bank" "$out/cardlookup/hub" -type d -exec touch {}/__init__.py \;
}

if [[ "${1:-}" == "--check" ]]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  generate "$tmp"
  if ! diff -r -q "$tmp/cardlookup/bank" "$root/cardlookup/bank" >/dev/null \
     || ! diff -r -q "$tmp/cardlookup/hub" "$root/cardlookup/hub" >/dev/null; then
    diff -r "$tmp/cardlookup" "$root/cardlookup" --exclude='*.py[co]' --exclude=__pycache__ \
      | grep -v '^Only in '"$root"'/cardlookup:' | head -40 || true
    echo "generated code in cardlookup/ is missing or stale: run scripts/gen_protos.sh" >&2
    exit 1
  fi
  echo "generated code is up to date"
else
  generate "$root"
fi
