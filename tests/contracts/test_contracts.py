"""The contract guards work: generated code is current, buf lint passes,
and buf breaking refuses wire/source-breaking edits of the released v1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")


def _copy_protos(tmp_path: Path) -> Path:
    dest = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", dest)
    return dest


def _buf(protos: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BUF is not None, "buf (PyPI buf-bin, a dev dependency) is not installed"
    return subprocess.run([BUF, *args], cwd=protos, capture_output=True, text=True, timeout=120)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text not found in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_buf_lint_passes() -> None:
    result = _buf(ROOT / "protos", "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_released_image_matches_current_contracts(tmp_path: Path) -> None:
    result = _buf(ROOT / "protos", "breaking", "--against", "released/v1.binpb")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_refuses_a_renumbered_field(tmp_path: Path) -> None:
    protos = _copy_protos(tmp_path)
    _edit(protos / "cardlookup/bank/v1/card_directory.proto", "string query_id = 1;", "string query_id = 9;")
    result = _buf(protos, "breaking", "--against", "released/v1.binpb")
    assert result.returncode != 0
    assert "ListCardsRequest" in result.stdout + result.stderr


def test_buf_breaking_refuses_a_removed_rpc(tmp_path: Path) -> None:
    protos = _copy_protos(tmp_path)
    _edit(
        protos / "cardlookup/hub/v1/card_lookup_service.proto",
        "rpc GetReport(GetReportRequest) returns (GetReportResponse);",
        "",
    )
    result = _buf(protos, "breaking", "--against", "released/v1.binpb")
    assert result.returncode != 0
    assert "GetReport" in result.stdout + result.stderr


def test_buf_breaking_accepts_an_added_field(tmp_path: Path) -> None:
    """The guard is not a blanket refusal: a compatible addition passes."""
    protos = _copy_protos(tmp_path)
    _edit(
        protos / "cardlookup/bank/v1/card_directory.proto",
        "  SignedConsent consent = 3;\n}",
        "  SignedConsent consent = 3;\n\n  // A new optional field.\n  string trace_id = 4;\n}",
    )
    result = _buf(protos, "breaking", "--against", "released/v1.binpb")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_is_current() -> None:
    env = dict(os.environ, PYTHON=sys.executable, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/gen_protos.sh"), "--check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stale_generated_code_is_detected(tmp_path: Path) -> None:
    """The --check mode fails when a generated module differs from protos/."""
    tree = tmp_path / "repo"
    shutil.copytree(ROOT / "protos", tree / "protos")
    shutil.copytree(ROOT / "scripts", tree / "scripts")
    shutil.copytree(ROOT / "cardlookup", tree / "cardlookup", ignore=shutil.ignore_patterns("__pycache__"))
    _edit(
        tree / "protos/cardlookup/bank/v1/card_directory.proto",
        "  SignedConsent consent = 3;\n}",
        "  SignedConsent consent = 3;\n  string trace_id = 4;\n}",
    )
    env = dict(os.environ, PYTHON=sys.executable, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", str(tree / "scripts/gen_protos.sh"), "--check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "stale" in result.stderr


def test_shipped_google_rpc_protos_are_the_pinned_ones_and_generate_no_python() -> None:
    """protos/google/rpc/ (for non-Python clients) are unchanged copies of
    the googleapis-common-protos package the project pins; Python code for
    them comes from that package, never from scripts/gen_protos.sh."""
    import google.rpc

    installed = Path(next(iter(google.rpc.__path__)))
    shipped = sorted(p.name for p in (ROOT / "protos" / "google" / "rpc").glob("*.proto"))
    assert shipped == ["code.proto", "error_details.proto", "status.proto"]
    for name in shipped:
        assert (ROOT / "protos/google/rpc" / name).read_bytes() == (installed / name).read_bytes(), name
    assert not (ROOT / "cardlookup" / "google").exists()
    assert "find cardlookup -name '*.proto'" in (ROOT / "scripts" / "gen_protos.sh").read_text()
    # buf lint leaves them alone (they follow googleapis' own rules).
    assert "ignore:\n    - google" in (ROOT / "protos" / "buf.yaml").read_text()
