"""The projection framework with the tenant view, end to end on the real services: outbox ->
relay -> stream -> consumer -> read table; a rebuild gives the rows incremental processing
gave, also while the live consumer runs, and redelivered events change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from fixtures.outbox_pipeline import drain, own_prefix, seed, wait_until
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.events.consumer import ConsumerConfig, StreamConsumer
from rustok_ref.events.envelope import EventEnvelope, LocaleDisabled, LocaleEnabled
from rustok_ref.events.projections import TENANT_VIEW
from rustok_ref.events.relay import OutboxRelay, RelayConfig
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import outbox, tenant_view

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(app_settings: Settings) -> str:
    return own_prefix(app_settings.redis_prefix)


@pytest.fixture
def relay(
    sessions: async_sessionmaker[AsyncSession], redis_client: aioredis.Redis, prefix: str
) -> OutboxRelay:
    return OutboxRelay(
        sessions, redis_client, prefix=prefix, config=RelayConfig(batch_size=500, idle_s=0.01)
    )


@contextlib.asynccontextmanager
async def live(
    sessions: async_sessionmaker[AsyncSession], redis: aioredis.Redis, prefix: str
) -> AsyncIterator[StreamConsumer]:
    consumer = TENANT_VIEW.consumer(
        redis, sessions, prefix=prefix, config=ConsumerConfig(lanes=4, block_ms=20)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await task


async def view(
    sessions: async_sessionmaker[AsyncSession], tenants: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        found = await uow.session.execute(
            select(tenant_view).where(tenant_view.c.tenant_id.in_(tenants))
        )
        return {row["tenant_id"]: dict(row) for row in found.mappings()}


def expected(events: Sequence[EventEnvelope]) -> dict[str, Any]:
    """One tenant's row, computed from its events in order."""
    locales: list[str] = []
    for event in events:
        if isinstance(event.payload, LocaleEnabled) and event.payload.locale not in locales:
            locales.append(event.payload.locale)
        if isinstance(event.payload, LocaleDisabled):
            locales = [x for x in locales if x != event.payload.locale]
    return {
        "tenant_id": events[0].aggregate_id,
        "locales": locales,
        "created_at": events[0].occurred_at,
        "updated_at": events[-1].occurred_at,
        "updates": sum(1 for e in events if e.event_type == "tenant.updated"),
        "events": len(events),
        "last_event_id": events[-1].id,
        "version": events[-1].aggregate_version,
    }


def tenants_of(events: Sequence[EventEnvelope]) -> list[uuid.UUID]:
    return sorted({event.aggregate_id for event in events})


async def test_the_tenant_view_follows_the_tenant_events(
    relay: OutboxRelay,
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    events = await seed(sessions, tenants=3, events_each=8)
    tenants = tenants_of(events)
    async with live(sessions, redis_client, prefix):
        await drain(relay)
        await wait_until(
            lambda: _all_there(sessions, tenants, len(events)), what="every event in the view"
        )
    rows = await view(sessions, tenants)
    for tenant in tenants:
        assert rows[tenant] == expected([e for e in events if e.aggregate_id == tenant])


async def _all_there(
    sessions: async_sessionmaker[AsyncSession], tenants: Sequence[uuid.UUID], count: int
) -> bool:
    rows = await view(sessions, tenants)
    return sum(row["events"] for row in rows.values()) == count


async def test_a_rebuild_gives_the_incremental_view_and_redelivery_changes_nothing(
    relay: OutboxRelay,
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    events = await seed(sessions, tenants=4, events_each=6)
    tenants = tenants_of(events)
    async with live(sessions, redis_client, prefix) as consumer:
        await drain(relay)
        await wait_until(lambda: _all_there(sessions, tenants, len(events)), what="all applied")
        incremental = await view(sessions, tenants)

        assert await TENANT_VIEW.rebuild(sessions, batch_size=7) >= len(events)
        assert await view(sessions, tenants) == incremental

        # publish every event again: the consumer must absorb each one
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            await uow.session.execute(
                update(outbox)
                .where(outbox.c.id.in_([e.id for e in events]))
                .values(status="pending", published_at=None)
            )
            await uow.commit()
        await drain(relay)
        await wait_until(
            lambda: consumer.metrics().duplicates >= len(events), what="duplicates absorbed"
        )
    assert await view(sessions, tenants) == incremental


async def test_a_rebuild_while_the_consumer_runs_ends_where_incremental_processing_does(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    stop = asyncio.Event()
    relay = OutboxRelay(
        sessions, redis_client, prefix=prefix, config=RelayConfig(batch_size=50, idle_s=0.005)
    )
    relay_task = asyncio.create_task(relay.run(stop))
    try:
        async with live(sessions, redis_client, prefix):
            writer = asyncio.create_task(seed(sessions, tenants=6, events_each=6))
            while not writer.done():
                await TENANT_VIEW.rebuild(sessions)
                await asyncio.sleep(0.01)
            events = await writer
            tenants = tenants_of(events)
            await TENANT_VIEW.rebuild(sessions)
            await wait_until(lambda: _all_there(sessions, tenants, len(events)), what="all applied")
    finally:
        stop.set()
        await relay_task
    rows = await view(sessions, tenants)
    for tenant in tenants:
        assert rows[tenant] == expected([e for e in events if e.aggregate_id == tenant])
    await TENANT_VIEW.rebuild(sessions)
    assert await view(sessions, tenants) == rows


def test_a_projection_names_only_catalogue_types() -> None:
    async def nothing(_session: AsyncSession, _event: EventEnvelope) -> None:
        return None

    with pytest.raises(Exception, match="unknown event type"):
        type(TENANT_VIEW)("bad", tenant_view, {"tenant.exploded": nothing})
    assert TENANT_VIEW.aggregate_types == ("tenant",)
