"""Issue 7's telemetry bullet end to end: the trace context goes into an event when it is
written (outbox), survives the relay and the stream, and becomes the parent of the span the
consumer handles it in, which also runs under the event's correlation id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis
from fixtures.outbox_pipeline import drain, own_prefix, wait_until
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_trace_id
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce import PRODUCT_VIEW, Money, ProductRecord, create_product
from rustok_ref.config import Settings
from rustok_ref.events.consumer import ConsumerConfig
from rustok_ref.events.envelope import ProductCreated, new_envelope
from rustok_ref.events.outbox import append
from rustok_ref.events.relay import OutboxRelay
from rustok_ref.lab.experiments.telemetry import CONSUMER_SCOPE, capture_spans
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import outbox
from rustok_ref.telemetry import use_correlation_id

pytestmark = pytest.mark.integration

tracer = trace.get_tracer(__name__)


async def _new_product(sessions: async_sessionmaker[AsyncSession]) -> ProductRecord:
    async with UnitOfWork(sessions, tenant_id=uuid.uuid4()) as uow:
        made = await create_product(
            uow, sku=f"sku-{uuid.uuid4().hex[:8]}", title="Traced", price=Money(100, "EUR"), stock=1
        )
        await uow.commit()
    return made


async def _outbox_traceparent(
    sessions: async_sessionmaker[AsyncSession], product: ProductRecord
) -> str | None:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        found: str | None = await uow.session.scalar(
            select(outbox.c.traceparent).where(outbox.c.aggregateid == product.id)
        )
    return found


def _consumer_spans(spans: Sequence[ReadableSpan], aggregate_id: uuid.UUID) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == CONSUMER_SCOPE
        and (span.attributes or {}).get("aggregate_id") == str(aggregate_id)
    ]


async def _handled_by_the_view(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    prefix: str,
    exporter: InMemorySpanExporter,
    product_id: uuid.UUID,
) -> ReadableSpan:
    """Relay the outbox to this test's streams, run the product view's consumer until it
    handled the product's event, and return the span it handled it in."""
    await drain(OutboxRelay(sessions, redis, prefix=prefix))
    consumer = PRODUCT_VIEW.consumer(
        redis, sessions, prefix=prefix, config=ConsumerConfig(lanes=1, block_ms=20)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await wait_until(
            lambda: _consumer_spans(exporter.get_finished_spans(), product_id),
            what="the product view's consumer span",
        )
    finally:
        stop.set()
        await running
    (handled,) = _consumer_spans(exporter.get_finished_spans(), product_id)
    return handled


async def test_the_consumer_span_is_a_child_of_the_span_that_wrote_the_event(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    app_settings: Settings,
) -> None:
    prefix = own_prefix(app_settings.redis_prefix)
    with capture_spans() as exporter:
        with use_correlation_id("req-trace-42"), tracer.start_as_current_span("POST /products"):
            product = await _new_product(sessions)
        (writer,) = [s for s in exporter.get_finished_spans() if s.name == "products.create"]
        written = writer.get_span_context()

        traceparent = await _outbox_traceparent(sessions, product)
        assert traceparent is not None
        assert traceparent.split("-")[1] == format_trace_id(written.trace_id)

        handled = await _handled_by_the_view(sessions, redis_client, prefix, exporter, product.id)
    assert handled.kind is SpanKind.CONSUMER
    assert handled.parent is not None
    assert handled.parent.span_id == written.span_id
    assert handled.get_span_context().trace_id == written.trace_id
    assert (handled.attributes or {})["correlation_id"] == "req-trace-42"
    assert (writer.attributes or {})["sku"] == product.sku
    assert (writer.attributes or {})["tenant_id"] == str(product.tenant_id)


async def test_an_event_written_outside_any_span_is_handled_in_a_trace_of_its_own(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    app_settings: Settings,
) -> None:
    prefix = own_prefix(app_settings.redis_prefix)
    tenant, product_id = uuid.uuid4(), uuid.uuid4()
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        envelope = new_envelope(ProductCreated(product_id=product_id), tenant_id=tenant)
        await append(uow, envelope)
        await uow.commit()
    assert envelope.traceparent is None
    with capture_spans() as exporter:
        handled = await _handled_by_the_view(sessions, redis_client, prefix, exporter, product_id)
    assert handled.parent is None
    assert (handled.attributes or {})["correlation_id"] == envelope.correlation_id
