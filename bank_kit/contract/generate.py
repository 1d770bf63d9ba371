"""Generates the kit's own Python code of the bank contract.

    python -m bank_kit.contract.generate           regenerate in place
    python -m bank_kit.contract.generate --check   fail if the code is stale

The contract (`cardlookup/bank/v1/*.proto`, copies of the files the hub
operator publishes) sits in this folder, and its generated modules beside
it: `bank_kit.contract.card_directory_pb2`, `card_session_pb2` and their
`_pb2_grpc`. The
package has a name of its own, so it never shadows another package called
`cardlookup` in the same environment; the descriptor keeps the contract's
file name, so it can share a process with other code generated from the
same contract. Needs grpcio-tools.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = ("cardlookup/bank/v1/card_directory.proto", "cardlookup/bank/v1/card_session.proto")
STEMS = ("card_directory", "card_session")
GENERATED = tuple(f"{stem}_pb2{end}" for stem in STEMS for end in (".py", ".pyi", "_grpc.py"))
# grpcio-tools writes absolute imports named after the proto's folders;
# the kit's modules import each other relatively instead.
IMPORTS = {f"from cardlookup.bank.v1 import {stem}_pb2": f"from . import {stem}_pb2" for stem in STEMS}


def generate() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{HERE}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                *(str(HERE / proto) for proto in PROTOS),
            ],
            check=True,
        )
        out = Path(tmp) / "cardlookup" / "bank" / "v1"
        generated = {}
        for name in GENERATED:
            text = (out / name).read_text(encoding="utf-8")
            for absolute, relative in IMPORTS.items():
                text = text.replace(absolute, relative)
            generated[name] = text
        return generated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bank_kit.contract.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args(argv)
    fresh = generate()
    if args.check:
        stale = [n for n, text in fresh.items() if not (HERE / n).exists() or (HERE / n).read_text("utf-8") != text]
        if stale:
            raise SystemExit(f"stale: {', '.join(stale)}: run python -m bank_kit.contract.generate")
        print("the kit's contract code is up to date")
        return
    for name, text in fresh.items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
