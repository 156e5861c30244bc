"""OpenTelemetry tracing from the standard `OTEL_*` variables, and a correlation id for logs.

Review P2.1 asks for trace export with a service name/version resource and a correlation id
that follows a request. Two choices keep this testable and quiet by default:

- nothing is exported unless `OTEL_TRACES_EXPORTER` or an OTLP endpoint variable says so
  (the real server likewise attaches OTel only when asked);
- `configure_tracing` returns its `TracerProvider` for the composition root to inject, and
  installs it as the process-wide provider only on request, because
  `trace.set_tracer_provider` works once per process and would pin the first test's choice.

The correlation id lives in a `ContextVar`, so each asyncio task sees its own, and
`CorrelationIdFilter` stamps it (with the active span's trace and span ids) on log records.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final, TextIO, cast

from opentelemetry import trace
from opentelemetry.sdk.resources import (
    SERVICE_NAME,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from rustok_ref import __version__

DEFAULT_SERVICE_NAME: Final = "rustok-ref"
LOG_FORMAT: Final = (
    "%(asctime)s %(levelname)s %(name)s "
    "[correlation_id=%(correlation_id)s trace_id=%(trace_id)s span_id=%(span_id)s] %(message)s"
)
_HANDLER_NAME: Final = "rustok-ref"
_ABSENT: Final = "-"

# OTLP protocol -> (module holding OTLPSpanExporter, the PyPI package that provides it)
_OTLP_EXPORTERS: Final = {
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
}

_correlation_id: ContextVar[str | None] = ContextVar("rustok_correlation_id", default=None)


class TelemetryConfigError(RuntimeError):
    """The `OTEL_*` variables ask for something this installation cannot do."""


def build_resource() -> Resource:
    """service.name (OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES, else "rustok-ref")
    and service.version (this package's), plus the other OTEL_RESOURCE_ATTRIBUTES."""
    service_name = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)
    return Resource.create(
        {SERVICE_NAME: str(service_name or DEFAULT_SERVICE_NAME), SERVICE_VERSION: __version__}
    )


def trace_exporter_names() -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER names; "otlp" when only an OTLP endpoint is set;
    none at all otherwise or when the list contains "none"."""
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "")
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    if not names:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return ["otlp"] if any(os.environ.get(var) for var in endpoints) else []
    return [] if "none" in names else names


def _otlp_exporter() -> SpanExporter:
    """The OTLP exporter for OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL (default http/protobuf);
    it reads its endpoint, headers and timeout from the environment itself."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in _OTLP_EXPORTERS:
        raise TelemetryConfigError(
            f"OTLP protocol {protocol!r} is not supported; use one of {sorted(_OTLP_EXPORTERS)}"
        )
    module_name, package = _OTLP_EXPORTERS[protocol]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TelemetryConfigError(
            f"OTLP trace export over {protocol} needs the package {package!r}, which is not "
            f"installed; install it, or set OTEL_TRACES_EXPORTER to 'console' or 'none'"
        ) from exc
    return cast(SpanExporter, module.OTLPSpanExporter())


def _span_processor(exporter_name: str) -> SpanProcessor:
    if exporter_name == "console":
        # sys.stdout looked up now: the SDK's default is the one bound when it was imported
        return SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout))
    if exporter_name == "otlp":
        return BatchSpanProcessor(_otlp_exporter())
    raise TelemetryConfigError(
        f"OTEL_TRACES_EXPORTER={exporter_name!r} is not supported; use otlp, console or none"
    )


def configure_tracing(*, install_global: bool = False) -> TracerProvider:
    """A provider exporting to what the `OTEL_*` variables configure (possibly nothing).

    The caller injects `provider.get_tracer(...)` where spans are made and calls
    `provider.shutdown()` at exit; `install_global=True` also makes it the process-wide
    provider, which can happen only once per process.
    """
    processors = [_span_processor(name) for name in trace_exporter_names()]
    provider = TracerProvider(resource=build_resource())
    for processor in processors:
        provider.add_span_processor(processor)
    if install_global:
        trace.set_tracer_provider(provider)
    return provider


def in_memory_tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    """For tests: a provider with the usual resource whose spans land, synchronously, in
    the returned exporter (`get_finished_spans()`, in end order; `clear()`)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=build_resource())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def correlation_id() -> str | None:
    """The correlation id of the current context, if one is in use."""
    return _correlation_id.get()


def new_correlation_id() -> str:
    """A fresh correlation id (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


@contextmanager
def use_correlation_id(value: str | None = None) -> Iterator[str]:
    """Make `value` (a new id when None or empty) the correlation id inside the block."""
    current = value or new_correlation_id()
    token = _correlation_id.set(current)
    try:
        yield current
    finally:
        _correlation_id.reset(token)


class CorrelationIdFilter(logging.Filter):
    """Adds `correlation_id`, `trace_id` and `span_id` to every record ("-" when absent).

    Attach it to a handler, not a logger: logger filters do not see records that propagate
    from child loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id() or _ABSENT
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format_trace_id(span_context.trace_id)
            record.span_id = format_span_id(span_context.span_id)
        else:
            record.trace_id = record.span_id = _ABSENT
        return True


def configure_logging(
    level: int | str = logging.INFO, *, stream: TextIO | None = None
) -> logging.Handler:
    """Log to `stream` (stderr by default) through the root logger, every line carrying the
    correlation id and trace ids. Calling it again replaces the handler it installed."""
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(previous)
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(CorrelationIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
