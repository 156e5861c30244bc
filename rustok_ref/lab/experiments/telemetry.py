"""Review P2.1 (OpenTelemetry): an order flow's spans, and its events' correlation ids.

`run_order_flow` drives the real services (products, orders, the checkout saga, shipping)
against PostgreSQL and Redis, each step inside a server span and a fresh correlation id the
way the API's middleware wraps a request, while the outbox relay and the read views'
consumers run beside it. The spans land in an in-memory exporter (`capture_spans`); the
events are read back from the Redis streams, i.e. after the outbox and the relay. The pure
functions below turn those into what notebook 09 plots and judges: a waterfall (spans on a
time axis, nested by parent), the share of spans in a request's trace, the attributes of the
service spans, how much of a request its child spans explain, and whether every event
carries the correlation id of the request that caused it.

The services get their tracer from the process-wide provider (`trace.get_tracer(__name__)`),
which can be set once per process; `capture_spans` therefore installs one SDK provider the
first time and fans finished spans out to whichever in-memory exporters are capturing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.bootstrap import Container, Services, projections, services, wire
from rustok_ref.commerce import (
    Money,
    OrderLineRequest,
    create_order,
    create_product,
    deliver_order,
    ship_order,
    submit_order,
    transition_product,
)
from rustok_ref.commerce.states import ProductEvent
from rustok_ref.config import Settings
from rustok_ref.events.consumer import ConsumerConfig
from rustok_ref.events.envelope import EventEnvelope, decode_envelope
from rustok_ref.events.relay import OutboxRelay, RelayConfig, backlog, stream_name
from rustok_ref.storage.unit_of_work import UnitOfWork
from rustok_ref.telemetry import build_resource, use_correlation_id

SERVICE_SCOPES: Final = ("rustok_ref.commerce", "rustok_ref.saga")
"""Instrumentation scopes of the service-method spans (the modules' `__name__`s)."""
CONSUMER_SCOPE: Final = "rustok_ref.events.consumer"
GROUP_ATTRIBUTE: Final = "messaging.consumer.group.name"
FLOW_AGGREGATES: Final = ("tenant", "product", "order", "payment", "shipment", "saga")
"""The streams an order flow writes to."""
SETTLE_TIMEOUT_S: Final = 60.0
"""Liveness bound for the relay and the consumers to catch up after the flow."""

_tracer = trace.get_tracer(__name__)


# -- capturing the process-wide provider's spans --------------------------------------------


class _Fanout(SpanProcessor):
    """Hands each finished span to the exporters capturing at that moment."""

    def __init__(self) -> None:
        self.exporters: list[InMemorySpanExporter] = []

    def on_end(self, span: ReadableSpan) -> None:
        for exporter in list(self.exporters):
            exporter.export((span,))


_FANOUT: Final = _Fanout()
_fanout_on: set[int] = set()


@contextlib.contextmanager
def capture_spans() -> Iterator[InMemorySpanExporter]:
    """The spans every tracer of the process finishes inside the block (service modules
    use the process-wide provider). Installs an SDK provider with the usual resource when
    none is set; RuntimeError when another kind of provider was installed."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider(resource=build_resource()))
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            raise RuntimeError(f"the process-wide tracer provider is a {type(provider)}")
    if id(provider) not in _fanout_on:
        provider.add_span_processor(_FANOUT)
        _fanout_on.add(id(provider))
    exporter = InMemorySpanExporter()
    _FANOUT.exporters.append(exporter)
    try:
        yield exporter
    finally:
        _FANOUT.exporters.remove(exporter)


# -- what the notebook reads ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpanRow:
    """One finished span, with times in seconds from the first span of the table."""

    name: str
    kind: str
    scope: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_s: float
    end_s: float
    attributes: dict[str, object]
    resource: dict[str, object]
    error: bool
    depth: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.end_s - self.start_s) * 1000


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One step of the flow as the API would have served it."""

    route: str
    correlation_id: str
    trace_id: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as a consumer receives it (read back from its stream, after the relay)."""

    event_type: str
    event_id: str
    aggregate_id: str
    correlation_id: str
    trace_id: str | None
    parent_span_id: str | None
    occurred_at_s: float


@dataclass
class FlowResult:
    """The spans, the requests and the events of one run of `run_order_flow`."""

    tenant_id: uuid.UUID
    spans: list[SpanRow]
    requests: list[RequestRow]
    events: list[EventRow] = field(default_factory=list)


def span_rows(spans: Iterable[ReadableSpan]) -> list[SpanRow]:
    """The finished spans as rows, in start order, times relative to the earliest start."""
    finished = sorted(
        (s for s in spans if s.start_time is not None and s.end_time is not None),
        key=lambda s: s.start_time or 0,
    )
    origin = earliest_start_ns(finished)
    rows = []
    for span in finished:
        context = span.get_span_context()
        assert context is not None and span.start_time is not None and span.end_time is not None
        scope = span.instrumentation_scope
        rows.append(
            SpanRow(
                name=span.name,
                kind=span.kind.name,
                scope="" if scope is None else scope.name,
                trace_id=format_trace_id(context.trace_id),
                span_id=format_span_id(context.span_id),
                parent_id=None if span.parent is None else format_span_id(span.parent.span_id),
                start_s=(span.start_time - origin) / 1e9,
                end_s=(span.end_time - origin) / 1e9,
                attributes=dict(span.attributes or {}),
                resource=dict(span.resource.attributes),
                error=not span.status.is_ok,
            )
        )
    return rows


def earliest_start_ns(spans: Iterable[ReadableSpan]) -> int:
    """The first start among `spans` (ns since the epoch; 0 when there is none): the
    origin of a table's time axis."""
    return min((s.start_time for s in spans if s.start_time is not None), default=0)


def waterfall(rows: Sequence[SpanRow]) -> list[SpanRow]:
    """The rows depth-first (each span followed by its children, by start time), each
    with its depth; a span whose parent is not in `rows` is a root."""
    ids = {row.span_id for row in rows}
    children: dict[str | None, list[SpanRow]] = {}
    for row in rows:
        parent = row.parent_id if row.parent_id in ids else None
        children.setdefault(parent, []).append(row)
    ordered: list[SpanRow] = []
    stack = [(row, 0) for row in sorted(children.get(None, []), key=_start, reverse=True)]
    while stack:
        row, depth = stack.pop()
        ordered.append(dataclasses.replace(row, depth=depth))
        kids = sorted(children.get(row.span_id, []), key=_start, reverse=True)
        stack.extend((kid, depth + 1) for kid in kids)
    return ordered


def _start(row: SpanRow) -> float:
    return row.start_s


def in_request_traces(rows: Sequence[SpanRow], requests: Sequence[RequestRow]) -> float:
    """Percent of `rows` that belong to the trace of one of `requests` (100 when empty)."""
    traces = {request.trace_id for request in requests}
    return _percent(sum(row.trace_id in traces for row in rows), len(rows))


def service_spans(rows: Iterable[SpanRow]) -> list[SpanRow]:
    """The spans the service methods made (the commerce and saga modules)."""
    return [row for row in rows if row.scope.startswith(SERVICE_SCOPES)]


def well_attributed(row: SpanRow) -> bool:
    """A service span a trace backend can find by tenant (and by SKU when it is a product
    operation), from a resource that names the service and its version."""
    has_sku = not row.name.startswith("products.") or "sku" in row.attributes
    named = SERVICE_NAME in row.resource and SERVICE_VERSION in row.resource
    return "tenant_id" in row.attributes and has_sku and named


def attributed_share(rows: Sequence[SpanRow]) -> float:
    """Percent of the service spans among `rows` that are `well_attributed`."""
    spans = service_spans(rows)
    return _percent(sum(well_attributed(row) for row in spans), len(spans))


def child_coverage(rows: Sequence[SpanRow], parent: SpanRow) -> float:
    """Percent of `parent`'s wall time during which at least one of its direct children ran
    (what a trace explains of the request; the rest is untraced work)."""
    length = parent.end_s - parent.start_s
    if length <= 0:
        return 100.0
    spans = sorted(
        (max(row.start_s, parent.start_s), min(row.end_s, parent.end_s))
        for row in rows
        if row.parent_id == parent.span_id and row.trace_id == parent.trace_id
    )
    covered, reach = 0.0, parent.start_s
    for start, end in spans:
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return 100 * covered / length


def mean_request_coverage(rows: Sequence[SpanRow], requests: Sequence[RequestRow]) -> float:
    """`child_coverage` averaged over the requests' server spans."""
    traces = {request.trace_id for request in requests}
    roots = [row for row in rows if row.kind == SpanKind.SERVER.name and row.trace_id in traces]
    if not roots:
        return 0.0
    return sum(child_coverage(rows, root) for root in roots) / len(roots)


def correlated_share(events: Sequence[EventRow], requests: Sequence[RequestRow]) -> float:
    """Percent of the events that carry the correlation id of the request in whose trace
    they were written (an event outside every request's trace counts against)."""
    by_trace = {request.trace_id: request.correlation_id for request in requests}
    matched = sum(
        event.trace_id is not None and by_trace.get(event.trace_id) == event.correlation_id
        for event in events
    )
    return _percent(matched, len(events))


def follow(
    correlation_id: str, events: Sequence[EventRow], rows: Sequence[SpanRow]
) -> list[dict[str, str]]:
    """The events of one correlation id in the order they occurred: which span wrote each,
    in which trace, and which consumer groups handled it."""
    by_id = {row.span_id: row for row in rows}
    handlers: dict[str, list[str]] = {}
    for row in rows:
        if row.scope == CONSUMER_SCOPE:
            group = str(row.attributes.get(GROUP_ATTRIBUTE, "?"))
            handlers.setdefault(str(row.attributes.get("event_id")), []).append(group)
    chain = []
    for event in sorted(events, key=lambda e: e.occurred_at_s):
        if event.correlation_id != correlation_id:
            continue
        writer = by_id.get(event.parent_span_id or "")
        chain.append(
            {
                "event": event.event_type,
                "written in span": "—" if writer is None else writer.name,
                "trace": "—" if event.trace_id is None else event.trace_id[:8],
                "handled by": ", ".join(sorted(handlers.get(event.event_id, []))) or "—",
            }
        )
    return chain


def _percent(part: int, whole: int) -> float:
    return 100.0 if whole == 0 else 100 * part / whole


# -- the flow ---------------------------------------------------------------------------------


def event_row(envelope: EventEnvelope, origin: float) -> EventRow:
    """An envelope's identity, correlation and producing span (from its traceparent)."""
    context = trace.get_current_span(envelope.trace_context()).get_span_context()
    return EventRow(
        event_type=envelope.event_type,
        event_id=str(envelope.id),
        aggregate_id=str(envelope.aggregate_id),
        correlation_id=envelope.correlation_id,
        trace_id=format_trace_id(context.trace_id) if context.is_valid else None,
        parent_span_id=format_span_id(context.span_id) if context.is_valid else None,
        occurred_at_s=envelope.occurred_at.timestamp() - origin,
    )


class _Flow:
    """The steps of an order, each as one request: a server span and a correlation id."""

    def __init__(self, built: Services) -> None:
        self.built = built
        self.tenant_id = uuid.UUID(int=0)
        self.requests: list[RequestRow] = []

    @contextlib.contextmanager
    def request(self, route: str) -> Iterator[None]:
        """What the API's middleware does around a handler: a correlation id and a server
        span named after the route."""
        with (
            use_correlation_id() as cid,
            _tracer.start_as_current_span(
                route, kind=SpanKind.SERVER, attributes={"http.route": route, "correlation_id": cid}
            ) as span,
        ):
            self.requests.append(
                RequestRow(route, cid, format_trace_id(span.get_span_context().trace_id))
            )
            yield

    @contextlib.asynccontextmanager
    async def step(self, route: str) -> AsyncIterator[UnitOfWork]:
        """A request whose handler works in the tenant's unit of work (committed when the
        block succeeds), as the REST routes do."""
        with self.request(route):
            async with UnitOfWork(self.built.container.sessions, tenant_id=self.tenant_id) as uow:
                yield uow
                await uow.commit()

    async def open_shop(self, skus: Sequence[str]) -> None:
        """A new tenant (set-up, not traced: tenants are created by the admin CLI) and its
        published products."""
        slug = f"otel-{uuid.uuid4().hex[:12]}"
        self.tenant_id = (await self.built.tenants.create(slug, "Traced shop")).id
        for sku in skus:
            async with self.step("POST /products") as uow:
                made = await create_product(
                    uow, sku=sku, title=f"Traced {sku}", price=Money(1_250, "EUR"), stock=100
                )
            async with self.step("POST /products/{product_id}/publish") as uow:
                await transition_product(uow, made.id, ProductEvent.PUBLISH)

    async def order(self, skus: Sequence[str]) -> None:
        async with self.step("POST /orders") as uow:
            lines = [OrderLineRequest(sku=sku, quantity=1) for sku in skus]
            order_id = (await create_order(uow, currency="EUR", lines=lines)).id
        async with self.step("POST /orders/{order_id}/submit") as uow:
            await submit_order(uow, order_id)
        with self.request("POST /orders/{order_id}/pay"):
            await self.built.checkout.pay(self.tenant_id, order_id)
            await self.built.checkout.drain()
        async with self.step("POST /orders/{order_id}/ship") as uow:
            await ship_order(uow, order_id)
        async with self.step("POST /orders/{order_id}/deliver") as uow:
            await deliver_order(uow, order_id)


async def run_order_flow(
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    *,
    products: int = 2,
    orders: int = 2,
) -> FlowResult:
    """For a new tenant, create and publish `products`, then place, submit, pay, ship and
    deliver `orders` orders of all of them, with the relay and the read views running;
    wait until the views handled every event, and return what was traced."""
    if products < 1 or orders < 1:
        raise ValueError("products and orders must be at least 1")
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        backend="external",
    )
    skus = [f"OTEL-{number}" for number in range(1, products + 1)]
    with capture_spans() as exporter:
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)  # capture_spans made sure
        async with (
            wire(settings, tracer_provider=provider) as container,
            services(container) as built,
            _workers(container.sessions, container.redis, redis_prefix),
        ):
            flow = _Flow(built)
            await flow.open_shop(skus)
            for _ in range(orders):
                await flow.order(skus)
            envelopes = await _settled(container, flow.tenant_id, exporter)
        spans = exporter.get_finished_spans()
    rows = span_rows(spans)
    origin = earliest_start_ns(spans) / 1e9
    traces = {request.trace_id for request in flow.requests}
    mine = [
        row
        for row in rows
        if row.trace_id in traces or row.attributes.get("tenant_id") == str(flow.tenant_id)
    ]
    events = [event_row(envelope, origin) for envelope in envelopes]
    return FlowResult(flow.tenant_id, mine, flow.requests, events)


@contextlib.asynccontextmanager
async def _workers(
    sessions: async_sessionmaker[AsyncSession], redis: aioredis.Redis, prefix: str
) -> AsyncIterator[None]:
    """The outbox relay and every read view's consumer, polling briskly, until the block
    ends (`bootstrap.run_workers` with idle times sized for a short experiment)."""
    stop = asyncio.Event()
    relay = OutboxRelay(sessions, redis, prefix=prefix, config=RelayConfig(idle_s=0.01))
    consumers = [
        view.consumer(redis, sessions, prefix=prefix, config=ConsumerConfig(lanes=2, block_ms=20))
        for view in projections().values()
    ]
    for consumer in consumers:
        await consumer.setup()
    tasks = [asyncio.create_task(relay.run(stop))]
    tasks += [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def handled_events(spans: Iterable[ReadableSpan]) -> set[tuple[str, str]]:
    """(consumer group, event id) of every consumer span among `spans`."""
    handled = set()
    for span in spans:
        scope = span.instrumentation_scope
        if scope is not None and scope.name == CONSUMER_SCOPE and span.attributes is not None:
            group = span.attributes.get(GROUP_ATTRIBUTE)
            handled.add((str(group), str(span.attributes.get("event_id"))))
    return handled


async def _settled(
    container: Container, tenant_id: uuid.UUID, exporter: InMemorySpanExporter
) -> list[EventEnvelope]:
    """Wait (up to SETTLE_TIMEOUT_S) until the outbox has nothing pending and every view
    handled each of the tenant's events it subscribes to; the tenant's events as the
    streams hold them."""
    redis, prefix = container.redis, container.settings.redis_prefix
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        envelopes = await stream_events(redis, prefix, tenant_id)
        wanted = {
            (view.name, str(envelope.id))
            for view in projections().values()
            for envelope in envelopes
            if envelope.event_type in view.handlers
        }
        missing = wanted - handled_events(exporter.get_finished_spans())
        if not missing and (await backlog(container.sessions)).pending == 0:
            return envelopes
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(missing)} of {len(wanted)} events not handled by the read views "
                f"after {SETTLE_TIMEOUT_S:g} s"
            )
        await asyncio.sleep(0.05)


async def stream_events(
    redis: aioredis.Redis, prefix: str, tenant_id: uuid.UUID
) -> list[EventEnvelope]:
    """The tenant's events on the flow's streams, decoded as a consumer decodes them."""
    found = []
    for aggregate_type in FLOW_AGGREGATES:
        entries: Any = await redis.xrange(stream_name(prefix, aggregate_type))
        for _, fields in entries:
            envelope = decode_envelope(fields[b"envelope"])
            if envelope.tenant_id == tenant_id:
                found.append(envelope)
    return found
