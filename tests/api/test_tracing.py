"""OpenTelemetry tracing (issue 19 item 5): a real journey (the real client,
hub and 16 simulated banks over mTLS) inside one app-backend span, with an
in-memory exporter: one trace holds the app backend's span, the hub's span
for each API call, one span per bank attempt at every chosen bank, store
writes and READY; every bank saw the trace's `traceparent` (the simulator
logs it); the hub's log lines inside the call carry the trace id; and no
span attribute holds personal data (R14)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bank_sim.fleet import BankFleet
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from client.aio import AsyncCardLookupClient
from hub.core.config import HubConfig, TracingSettings
from hub.core.logging import scrub
from hub.telemetry import tracing
from tests.api.conftest import FAST, client_options, start_hub
from tests.api.helpers import HubHarness, refused


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use_provider(provider)
    try:
        yield memory
    finally:
        tracing.use_provider(None)
        provider.shutdown()


def hex_id(value: int, digits: int = 32) -> str:
    return format(value, f"0{digits}x")


async def test_one_trace_spans_the_app_backend_the_hub_and_every_bank(
    harness: HubHarness, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bank_sim")
    caplog.set_level(logging.INFO, logger="hub")
    person = harness.eligible(0)
    app = tracing._provider.get_tracer("app-backend") if tracing._provider else None
    assert app is not None
    await harness.enrol(person)
    with app.start_as_current_span("app.card_lookup") as root:
        query = await harness.create(person)
        await harness.until_ready(person, query.query_id)
        await harness.client.get_report(person.user_id, query.query_id, person.payment_password)
    trace_id = root.get_span_context().trace_id
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    ours = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    by_name: dict[str, list[ReadableSpan]] = {}
    for s in ours:
        by_name.setdefault(s.name, []).append(s)

    # The hub's span for CreateQuery is a child of the app backend's span.
    (create,) = by_name["cardlookup.hub.v1.CardLookupService/CreateQuery"]
    assert create.kind == SpanKind.SERVER and create.parent is not None
    assert create.parent.span_id == root.get_span_context().span_id
    assert create.attributes is not None and create.attributes["rpc.grpc.status_code"] == "OK"
    for method in ("StartVerification", "ListBanks", "WatchQuery", "GetReport"):
        assert f"cardlookup.hub.v1.CardLookupService/{method}" in by_name, method

    # One CLIENT span per bank attempt, at every chosen bank, under the hub's span.
    attempts = by_name["cardlookup.bank.v1.CardDirectoryService/ListCards"]
    assert {a.attributes["cardlookup.bank"] for a in attempts if a.attributes} == set(DEFAULT_BANK_CODES)
    for a in attempts:
        assert a.kind == SpanKind.CLIENT and a.parent is not None
        assert a.parent.span_id == create.context.span_id if create.context else False
        assert a.attributes is not None and a.attributes["cardlookup.query_id"] == query.query_id

    # READY and the store's writes are in the same trace.
    (ready,) = by_name["query.ready"]
    assert ready.attributes is not None and ready.attributes["cardlookup.query_id"] == query.query_id
    assert any(name.startswith("store.") for name in by_name)

    # Every bank received the trace context and logged it.
    sent = {
        r.getMessage().split()[1]
        for r in caplog.records
        if r.name.startswith("bank_sim") and f"-{hex_id(trace_id)}-" in r.getMessage()
    }
    assert sent == set(DEFAULT_BANK_CODES)

    # The hub's log lines inside the call name the trace.
    accepted = [r for r in caplog.records if r.getMessage() == "query_accepted"]
    assert accepted and all(getattr(r, "fields", {}).get("trace_id") == hex_id(trace_id) for r in accepted)

    # No attribute of any span (the whole run) holds personal data.
    secrets = {person.full_name, person.id_number, person.phone, person.payment_password}
    secrets |= {
        card.number for code in DEFAULT_BANK_CODES for card in harness.population.cards_at(code, person.id_number)
    }
    for s in spans:
        for key, value in (s.attributes or {}).items():
            text = str(value)
            assert not any(secret in text for secret in secrets), (s.name, key)
            assert scrub(text) == text, (s.name, key)


async def test_without_a_provider_no_trace_context_leaves_the_hub(
    harness: HubHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Off by default: the banks see no traceparent and log lines no trace id."""
    caplog.set_level(logging.INFO, logger="bank_sim")
    caplog.set_level(logging.INFO, logger="hub")
    person = harness.eligible(1)
    await harness.enrol(person)
    query = await harness.create(person, DEFAULT_BANK_CODES[:2])
    await harness.until_ready(person, query.query_id)
    assert not any("traceparent" in r.getMessage() for r in caplog.records)
    assert not any("trace_id" in getattr(r, "fields", {}) for r in caplog.records)


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace receiver (what an OpenTelemetry Collector serves)."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_tracing_enabled_in_the_config_exports_over_otlp(
    pki: PkiPaths, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> None:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))  # its own threads: the flush blocks the loop
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        settings = TracingSettings(enabled=True, otlp_endpoint=f"http://127.0.0.1:{port}", service_name="hub-test")
        config = HubConfig.dev(pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", timings=FAST, tracing=settings)
        hub = await start_hub(config, clock)
        try:
            async with AsyncCardLookupClient(client_options(pki, hub.port)) as client:
                await refused("USER_NOT_FOUND", client.get_user("u-nobody"))
        finally:
            await hub.stop(grace=0)  # flushes the batch to the collector
        assert tracing._provider is None  # the hub's own provider is gone with it
    finally:
        server.stop(0)
    spans = [
        (resource.resource, span)
        for request in collector.requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    (resource, get_user), *_ = [(r, s) for r, s in spans if s.name.endswith("/GetUser")]
    assert {"key": "service.name", "value": "hub-test"} in [
        {"key": a.key, "value": a.value.string_value} for a in resource.attributes
    ]
    codes = {a.value.string_value for a in get_user.attributes if a.key == "rpc.grpc.status_code"}
    assert codes == {"NOT_FOUND"}


def test_the_guides_document_the_trace_context_banks_receive() -> None:
    root = Path(__file__).resolve().parents[2]
    bank_guide = (root / "docs" / "bank-integration.md").read_text(encoding="utf-8")
    assert "## Trace context (`traceparent`)" in bank_guide
    operations = (root / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in ("cardlookup.bank.v1.CardDirectoryService/ListCards", "query.ready", "store.write", "trace_id"):
        assert name in operations, name
