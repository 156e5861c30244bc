"""Stream consumers against the real Redis and PostgreSQL: order per aggregate, XACK only after
handling, duplicates absorbed by the idempotency row, redelivery of what a restarted or dead
consumer left pending, the block and reject policies, dead letters and poison entries."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from fixtures.outbox_pipeline import own_prefix, tenant_story, wait_until
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.events.consumer import ConsumerConfig, StreamConsumer, prune_processed
from rustok_ref.events.dispatcher import DispatcherConfig, Policy, SubscriberOptions
from rustok_ref.events.envelope import EventEnvelope, new_envelope
from rustok_ref.events.relay import stream_fields, stream_name
from rustok_ref.lab.ramp import DeliveryAudit, Sighting
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import processed_events

pytestmark = pytest.mark.integration

Handler = Callable[[UnitOfWork, EventEnvelope], Awaitable[None]]


@pytest.fixture
def prefix(app_settings: Settings) -> str:
    return own_prefix(app_settings.redis_prefix)


@pytest.fixture
async def effects(engine: AsyncEngine) -> str:
    """A table the test handlers write one row per call to (no key: nothing stops a double)."""
    async with engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS consumer_test_effects (consumer text, event_id uuid)")
        )
    return "consumer_test_effects"


def stories(tenants: int, length: int) -> list[EventEnvelope]:
    """Tenant events with versions 1..length, interleaved across tenants."""
    lives = []
    for _ in range(tenants):
        tenant = uuid.uuid4()
        lives.append(
            [
                new_envelope(payload, tenant_id=tenant, aggregate_version=version)
                for version, payload in enumerate(tenant_story(tenant, length), start=1)
            ]
        )
    return [life[n] for n in range(length) for life in lives]


async def publish(redis: aioredis.Redis, prefix: str, *events: EventEnvelope) -> None:
    for event in events:
        await redis.xadd(stream_name(prefix, event.aggregate_type), stream_fields(event))  # type: ignore[arg-type]


class Recorder:
    """The handler and the observer of a test consumer."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.calls = 0
        self.handled: list[Sighting] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_types: set[str] = set()

    async def handle(self, uow: UnitOfWork, event: EventEnvelope) -> None:
        self.calls += 1
        await self.gate.wait()
        if event.event_type in self.fail_types:
            raise RuntimeError(f"handler refuses {event.event_type}")
        await uow.session.execute(
            text("INSERT INTO consumer_test_effects VALUES (:c, :e)"),
            {"c": self.group, "e": event.id},
        )

    def observe(self, event: EventEnvelope, lag_s: float) -> None:
        self.handled.append(
            Sighting(str(event.id), str(event.aggregate_id), event.aggregate_version)
        )


@contextlib.asynccontextmanager
async def running(consumer: StreamConsumer) -> AsyncIterator[StreamConsumer]:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await task


def consumer(
    redis: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    recorder: Recorder,
    *,
    name: str | None = None,
    config: ConsumerConfig | None = None,
) -> StreamConsumer:
    return StreamConsumer(
        redis,
        sessions,
        group=recorder.group,
        handler=recorder.handle,
        aggregate_types=["tenant"],
        prefix=prefix,
        name=name,
        config=config or ConsumerConfig(lanes=2, block_ms=20),
        on_handled=recorder.observe,
    )


async def pending(redis: aioredis.Redis, prefix: str, group: str) -> int:
    summary = await redis.xpending(stream_name(prefix, "tenant"), group)
    return int(summary["pending"])


async def effect_counts(sessions: async_sessionmaker[AsyncSession], group: str) -> list[int]:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        found = await uow.session.execute(
            text(
                "SELECT count(*) FROM consumer_test_effects WHERE consumer = :c GROUP BY event_id"
            ),
            {"c": group},
        )
        return sorted(found.scalars())


def in_order(recorder: Recorder, events: list[EventEnvelope]) -> bool:
    audit = DeliveryAudit.of(recorder.handled)
    return audit.reorderings == 0 and audit.events == len(events) and audit.duplicates == 0


async def test_events_are_handled_in_order_per_aggregate_and_acked_after_handling(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=4, length=6)
    await publish(redis_client, prefix, *events)
    recorder = Recorder(f"order-{uuid.uuid4().hex[:6]}")
    async with running(consumer(redis_client, sessions, prefix, recorder)) as live:
        await wait_until(lambda: len(recorder.handled) == len(events), what="all handled")
        await wait_until(lambda: live.metrics().acked == len(events), what="all acked")
    assert in_order(recorder, events)
    assert await pending(redis_client, prefix, recorder.group) == 0
    assert await effect_counts(sessions, recorder.group) == [1] * len(events)
    metrics = live.metrics()
    assert (metrics.handled, metrics.duplicates, metrics.dead_lettered) == (len(events), 0, 0)
    assert metrics.lag.p99 is not None


async def test_a_redelivered_event_is_absorbed_and_its_effects_happen_once(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=2, length=4)
    await publish(redis_client, prefix, *events, *events)  # every event twice
    recorder = Recorder(f"dupes-{uuid.uuid4().hex[:6]}")
    async with running(consumer(redis_client, sessions, prefix, recorder)) as live:
        await wait_until(lambda: live.metrics().acked == 2 * len(events), what="all acked")
    metrics = live.metrics()
    assert (metrics.handled, metrics.duplicates) == (len(events), len(events))
    assert recorder.calls == 2 * len(events)  # the duplicates ran, and were rolled back
    assert await effect_counts(sessions, recorder.group) == [1] * len(events)
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        recorded = await uow.session.execute(
            select(func.count()).where(processed_events.c.consumer == recorder.group)
        )
        assert recorded.scalar_one() == len(events)


async def test_a_handler_that_trips_over_a_duplicate_still_counts_it_as_one(
    redis_client: aioredis.Redis,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
) -> None:
    events = stories(tenants=1, length=3)
    await publish(redis_client, prefix, *events, *events)
    group = f"keyed-{uuid.uuid4().hex[:6]}"
    table = f"consumer_test_keyed_{uuid.uuid4().hex[:6]}"
    async with engine.begin() as conn:  # its key refuses a second insert of an event
        await conn.execute(text(f"CREATE TABLE {table} (event_id uuid PRIMARY KEY)"))

    async def insert_once(uow: UnitOfWork, event: EventEnvelope) -> None:
        await uow.session.execute(text(f"INSERT INTO {table} VALUES (:e)"), {"e": event.id})

    live = StreamConsumer(
        redis_client,
        sessions,
        group=group,
        handler=insert_once,
        aggregate_types=["tenant"],
        prefix=prefix,
        config=ConsumerConfig(block_ms=20),
    )
    async with running(live):
        await wait_until(lambda: live.metrics().acked == 2 * len(events), what="all acked")
    metrics = live.metrics()
    assert (metrics.handled, metrics.duplicates, metrics.dead_lettered) == (3, 3, 0)


async def test_a_restarted_consumer_handles_what_it_had_read_but_not_acked(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=2, length=3)
    await publish(redis_client, prefix, *events)
    recorder = Recorder(f"restart-{uuid.uuid4().hex[:6]}")
    first = consumer(redis_client, sessions, prefix, recorder, name="c1")
    await first.setup()
    # the first life read everything, then died before handling any of it
    await redis_client.xreadgroup(recorder.group, "c1", {stream_name(prefix, "tenant"): ">"})
    assert await pending(redis_client, prefix, recorder.group) == len(events)

    restarted = consumer(redis_client, sessions, prefix, recorder, name="c1")
    async with running(restarted):
        await wait_until(lambda: restarted.metrics().acked == len(events), what="all acked")
    assert restarted.metrics().recovered == len(events)
    assert in_order(recorder, events)
    assert await pending(redis_client, prefix, recorder.group) == 0


async def test_a_dead_consumers_pending_entries_are_claimed_by_another(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=2, length=3)
    await publish(redis_client, prefix, *events)
    recorder = Recorder(f"claim-{uuid.uuid4().hex[:6]}")
    config = ConsumerConfig(lanes=2, block_ms=20, claim_idle_ms=0)
    await consumer(redis_client, sessions, prefix, recorder, config=config).setup()
    await redis_client.xreadgroup(recorder.group, "dead", {stream_name(prefix, "tenant"): ">"})

    heir = consumer(redis_client, sessions, prefix, recorder, name="heir", config=config)
    async with running(heir):
        await wait_until(lambda: heir.metrics().acked == len(events), what="all acked")
    assert heir.metrics().claimed >= len(events)
    assert in_order(recorder, events)
    assert await pending(redis_client, prefix, recorder.group) == 0


async def test_under_reject_a_refused_entry_stays_pending_and_is_redelivered_in_order(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=1, length=10)
    await publish(redis_client, prefix, *events)
    recorder = Recorder(f"reject-{uuid.uuid4().hex[:6]}")
    recorder.gate.clear()
    lane = SubscriberOptions(capacity=1, policy=Policy.REJECT)
    config = ConsumerConfig(lanes=1, lane=lane, block_ms=20)
    live = consumer(redis_client, sessions, prefix, recorder, config=config)
    async with running(live):
        await wait_until(lambda: live.metrics().dispatcher.rejected > 0, what="a rejection")
        await wait_until(lambda: live.metrics().parked >= 8, what="the lane parked")
        assert await pending(redis_client, prefix, recorder.group) == len(events)  # none acked
        assert recorder.handled == []
        recorder.gate.set()
        await wait_until(lambda: live.metrics().acked == len(events), what="all acked")
    assert in_order(recorder, events)
    assert live.metrics().recovered >= 8
    assert await pending(redis_client, prefix, recorder.group) == 0


async def test_under_block_a_full_lane_stops_the_reading(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=1, length=20)
    await publish(redis_client, prefix, *events)
    recorder = Recorder(f"block-{uuid.uuid4().hex[:6]}")
    recorder.gate.clear()
    lane = SubscriberOptions(capacity=2, policy=Policy.BLOCK)
    config = ConsumerConfig(lanes=1, lane=lane, read_count=1, block_ms=20)
    live = consumer(redis_client, sessions, prefix, recorder, config=config)
    async with running(live):
        # one entry in the handler, two queued, one waiting in submit: the reading stops
        await wait_until(lambda: live.metrics().dispatcher.depth == 2, what="a full lane")
        await wait_until(lambda: live.metrics().submitted == 3, what="three accepted")
        assert await pending(redis_client, prefix, recorder.group) == 4
        recorder.gate.set()
        await wait_until(lambda: live.metrics().acked == len(events), what="all acked")
    assert in_order(recorder, events)
    assert live.metrics().dispatcher.rejected == 0


async def test_a_failing_handler_dead_letters_the_entry_and_the_loop_goes_on(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=1, length=6)
    await publish(redis_client, prefix, *events)
    recorder = Recorder(f"fail-{uuid.uuid4().hex[:6]}")
    recorder.fail_types = {"locale.enabled"}
    failing = [e for e in events if e.event_type in recorder.fail_types]
    config = ConsumerConfig(
        lanes=1,
        lane=SubscriberOptions(capacity=10, max_attempts=2),
        dispatcher=DispatcherConfig(backoff_base_s=0),
        block_ms=20,
    )
    live = consumer(redis_client, sessions, prefix, recorder, config=config)
    async with running(live):
        await wait_until(lambda: live.metrics().acked == len(events), what="all acked")
    metrics = live.metrics()
    assert (metrics.handled, metrics.dead_lettered) == (len(events) - len(failing), len(failing))
    dead = await redis_client.xrange(live.dead_stream)
    assert sorted(fields[b"id"].decode() for _, fields in dead) == sorted(
        str(e.id) for e in failing
    )
    assert all(b"handler refuses" in fields[b"error"] for _, fields in dead)
    assert await pending(redis_client, prefix, recorder.group) == 0


async def test_an_undecodable_entry_is_dead_lettered_and_skipped(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=1, length=2)
    stream = stream_name(prefix, "tenant")
    await redis_client.xadd(stream, {"envelope": b"{not json"})
    await publish(redis_client, prefix, *events)
    recorder = Recorder(f"poison-{uuid.uuid4().hex[:6]}")
    live = consumer(redis_client, sessions, prefix, recorder)
    async with running(live):
        await wait_until(lambda: live.metrics().acked == 3, what="all acked")
    assert (live.metrics().poison, live.metrics().handled) == (1, 2)
    ((_, fields),) = await redis_client.xrange(live.dead_stream)
    assert fields[b"envelope"] == b"{not json" and b"undecodable" in fields[b"error"]


async def test_entries_trimmed_while_pending_are_acknowledged_and_counted(
    redis_client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    effects: str,
) -> None:
    events = stories(tenants=1, length=3)
    await publish(redis_client, prefix, *events)
    recorder = Recorder(f"trim-{uuid.uuid4().hex[:6]}")
    await consumer(redis_client, sessions, prefix, recorder).setup()
    stream = stream_name(prefix, "tenant")
    await redis_client.xreadgroup(recorder.group, "c1", {stream: ">"})
    await redis_client.xtrim(stream, maxlen=0, approximate=False)
    live = consumer(redis_client, sessions, prefix, recorder, name="c1")
    async with running(live):  # Redis 7's XAUTOCLAIM drops them; 6.2's PEL read shows them
        await wait_until(lambda: live.metrics().trimmed == 3, what="all counted")
    assert live.metrics().handled == 0
    assert await pending(redis_client, prefix, recorder.group) == 0


async def test_prune_forgets_idempotency_rows_older_than_the_window(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    group = f"prune-{uuid.uuid4().hex[:6]}"
    now = datetime(2030, 1, 1, tzinfo=UTC)
    ages = [timedelta(days=8), timedelta(days=7, seconds=1), timedelta(days=6)]
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        await uow.session.execute(
            insert(processed_events),
            [{"event_id": uuid.uuid4(), "consumer": group, "processed_at": now - a} for a in ages],
        )
        await uow.commit()
    assert await prune_processed(sessions, consumer=group, now=now, batch_size=1) == 2
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        left = await uow.session.execute(
            select(processed_events.c.processed_at).where(processed_events.c.consumer == group)
        )
        assert list(left.scalars()) == [now - ages[2]]
