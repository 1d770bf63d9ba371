"""Issue 19 item 6: the alert rules and the dashboard are files a tool
checks, and every metric they name is one the hub exports; the exposition
carries no `_created` series."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hub.telemetry.metrics import HubMetrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "cardlookup-hub.rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "cardlookup-hub.rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "cardlookup-hub.json"
METRIC = re.compile(r"\bcardlookup_hub_[a-z_]+")
REQUIRED_ALERTS = {
    "CardlookupBankErrorRate",
    "CardlookupBankBreakerOpen",
    "CardlookupPendingQueryNearWindow",
    "CardlookupStoreWritesFailing",
    "CardlookupReplicaNotServing",
}


def busy_metrics() -> HubMetrics:
    """A HubMetrics with a sample in every labelled family that matters."""
    metrics = HubMetrics()
    metrics.bank_attempt("102", "transient", "UNAVAILABLE", 0.2)
    metrics.bank_attempt("102", "answered", "", 0.1)
    metrics.bank_final("102", "ANSWERED", "")
    metrics.api_calls.labels("GetQuery", "OK").inc()
    metrics.api_seconds.labels("GetQuery").observe(0.01)
    metrics.store_seconds.labels("write").observe(0.001)
    metrics.sms_sent.labels("REPORT_READY").inc()
    metrics.reloads.labels("applied").inc()
    metrics.serving.labels("").set(1)
    return metrics


def exported_names(exposition: str) -> set[str]:
    """Every sample name a scrape of this exposition can hold (a histogram's
    `_bucket`, `_sum` and `_count` included)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.M):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_the_exposition_has_no_created_series() -> None:
    text = busy_metrics().exposition()
    assert "cardlookup_hub_bank_attempts_total" in text and "cardlookup_hub_api_call_seconds_bucket" in text
    assert "_created" not in text


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=["rules", "dashboard"])
def test_every_metric_the_file_names_is_exported_by_the_hub(path: Path) -> None:
    named = set(METRIC.findall(path.read_text(encoding="utf-8")))
    assert named, path
    missing = named - exported_names(busy_metrics().exposition())
    assert not missing, f"{path.name} names metrics the hub does not export: {sorted(missing)}"


def test_the_rules_file_has_the_required_alerts_and_the_dashboard_a_panel_for_each() -> None:
    rules = RULES.read_text(encoding="utf-8")
    alerts = dict(re.findall(r"- alert: (\w+)\n\s+expr: \|?\s*\n?\s*(.+)", rules))
    assert set(alerts) >= REQUIRED_ALERTS
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panel_metrics = {m for panel in dashboard["panels"] for t in panel["targets"] for m in METRIC.findall(t["expr"])}
    for name in REQUIRED_ALERTS:
        first_metric = METRIC.findall(alerts[name])[0]
        assert first_metric in panel_metrics, f"no dashboard panel shows {first_metric} ({name})"


def test_the_operations_guide_names_every_alert() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in re.findall(r"- alert: (\w+)", RULES.read_text(encoding="utf-8")):
        assert f"`{name}`" in doc, name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is not installed")
def test_promtool_accepts_the_rules_and_its_unit_tests_pass() -> None:
    for command in (["check", "rules", RULES.name], ["test", "rules", RULES_TEST.name]):
        done = subprocess.run(["promtool", *command], cwd=RULES.parent, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_operations_guide_names_the_health_services_and_the_write_methods() -> None:
    from client.options import SERVICE, WRITES_HEALTH_SERVICE
    from hub.api.interceptors import SERVICE_NAME, WRITE_METHODS
    from hub.process.server import WRITES_HEALTH_SERVICE as HUB_WRITES

    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = doc.split("## Health, per service", 1)[1].split("\n## ", 1)[0]
    assert WRITES_HEALTH_SERVICE == HUB_WRITES and SERVICE == SERVICE_NAME
    assert f"`{HUB_WRITES}`" in section and f"`{SERVICE_NAME}`" in section
    writes_item = section.split("\n- writes (", 1)[1].split("\n- ", 1)[0]
    named = set(re.findall(r"`([A-Z][A-Za-z]+)`", writes_item.split("are still tried")[0]))
    assert named == WRITE_METHODS
