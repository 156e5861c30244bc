"""Tracing set-up from OTEL_* variables, and the correlation id on log lines."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rustok_ref import __version__, telemetry
from rustok_ref.telemetry import (
    CorrelationIdFilter,
    TelemetryConfigError,
    configure_logging,
    configure_tracing,
    correlation_id,
    in_memory_tracing,
    use_correlation_id,
)

OTLP_HTTP_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(CorrelationIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def list_handler() -> Iterator[ListHandler]:
    logger = logging.getLogger("rustok_ref.test_telemetry")
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


# --- exporters from the environment -------------------------------------------------------


def test_nothing_is_exported_without_otel_variables(capsys: pytest.CaptureFixture[str]) -> None:
    assert telemetry.trace_exporter_names() == []
    provider = configure_tracing()
    with provider.get_tracer("test").start_as_current_span("quiet"):
        pass
    provider.shutdown()
    assert capsys.readouterr().out == ""


def test_console_exporter_is_picked_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = configure_tracing()
    with provider.get_tracer("test").start_as_current_span("checkout"):
        pass
    provider.shutdown()
    out = capsys.readouterr().out
    assert '"name": "checkout"' in out
    assert '"service.name": "rustok-ref"' in out


@pytest.mark.parametrize("value", ["none", "console,none", " NONE "])
def test_none_disables_export(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert telemetry.trace_exporter_names() == []


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_an_otlp_endpoint_alone_selects_otlp(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:4318")
    assert telemetry.trace_exporter_names() == ["otlp"]


def test_otlp_without_its_package_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, OTLP_HTTP_MODULE, None)  # makes the import fail
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with pytest.raises(TelemetryConfigError, match="opentelemetry-exporter-otlp-proto-http"):
        configure_tracing()


def test_otlp_grpc_protocol_names_the_grpc_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(TelemetryConfigError, match="opentelemetry-exporter-otlp-proto-grpc"):
        configure_tracing()


def test_otlp_uses_the_exporter_package_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    exported = InMemorySpanExporter()
    fake = ModuleType(OTLP_HTTP_MODULE)
    fake.OTLPSpanExporter = lambda: exported  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, OTLP_HTTP_MODULE, fake)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    provider = configure_tracing()
    with provider.get_tracer("test").start_as_current_span("batched"):
        pass
    provider.force_flush()
    assert [span.name for span in exported.get_finished_spans()] == ["batched"]
    provider.shutdown()


@pytest.mark.parametrize(
    ("variable", "value", "match"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin", "zipkin"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json", "http/json"),
    ],
)
def test_unsupported_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, match: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv(variable, value)
    with pytest.raises(TelemetryConfigError, match=match):
        configure_tracing()


def test_the_global_provider_is_left_alone_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[object] = []
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    configure_tracing()
    assert installed == []
    provider = configure_tracing(install_global=True)
    assert installed == [provider]


# --- resource ------------------------------------------------------------------------------


def test_spans_carry_the_service_resource() -> None:
    provider, exporter = in_memory_tracing()
    with provider.get_tracer("test").start_as_current_span("order.create"):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "rustok-ref"
    assert span.resource.attributes["service.version"] == __version__


def test_service_name_comes_from_otel_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,deployment.environment=ci")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "rustok-worker")
    attributes = telemetry.build_resource().attributes
    assert attributes["service.name"] == "rustok-worker"
    assert attributes["deployment.environment"] == "ci"


def test_service_name_can_come_from_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=rustok-relay")
    assert telemetry.build_resource().attributes["service.name"] == "rustok-relay"


# --- correlation id ------------------------------------------------------------------------


def test_use_correlation_id_generates_and_restores() -> None:
    assert correlation_id() is None
    with use_correlation_id() as outer:
        assert len(outer) == 32
        int(outer, 16)
        assert correlation_id() == outer
        with use_correlation_id("req-7") as inner:
            assert inner == "req-7" == correlation_id()
        assert correlation_id() == outer
    assert correlation_id() is None


def test_new_correlation_ids_differ() -> None:
    assert telemetry.new_correlation_id() != telemetry.new_correlation_id()


def test_correlation_id_appears_on_a_captured_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(CorrelationIdFilter())
    logger = logging.getLogger("rustok_ref.test_telemetry")
    with caplog.at_level(logging.INFO):
        with use_correlation_id("req-42"):
            logger.info("order created")
        logger.info("after the request")
    inside, after = caplog.records
    assert inside.correlation_id == "req-42"
    assert (inside.trace_id, inside.span_id) == ("-", "-")
    assert after.correlation_id == "-"


async def test_correlation_ids_are_isolated_between_tasks(list_handler: ListHandler) -> None:
    logger = logging.getLogger("rustok_ref.test_telemetry")
    both_inside = asyncio.Barrier(2)

    async def request(name: str) -> None:
        with use_correlation_id(name):
            await both_inside.wait()  # the other task has set its own id by now
            logger.info(name)
            await asyncio.sleep(0)
            logger.info(name)

    await asyncio.gather(request("req-a"), request("req-b"))
    assert len(list_handler.records) == 4
    for record in list_handler.records:
        assert record.correlation_id == record.getMessage()
    assert correlation_id() is None


def test_trace_and_span_ids_appear_inside_a_span(list_handler: ListHandler) -> None:
    provider, _ = in_memory_tracing()
    logger = logging.getLogger("rustok_ref.test_telemetry")
    with provider.get_tracer("test").start_as_current_span("pay") as span:
        logger.info("paying")
    context = span.get_span_context()
    (record,) = list_handler.records
    assert record.trace_id == f"{context.trace_id:032x}"
    assert record.span_id == f"{context.span_id:016x}"


def test_configure_logging_formats_every_line_with_the_ids() -> None:
    root = logging.getLogger()
    level = root.level
    first = configure_logging(logging.INFO, stream=io.StringIO())
    stream = io.StringIO()
    handler = configure_logging(logging.INFO, stream=stream)
    try:
        assert first not in root.handlers  # calling again replaces, never duplicates
        with use_correlation_id("req-9"):
            logging.getLogger("rustok_ref.anything").info("hello")
        line = stream.getvalue()
        assert "correlation_id=req-9 trace_id=- span_id=-" in line
        assert line.rstrip().endswith("hello")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
