"""The outbox relay against the real PostgreSQL and Redis: what it publishes and marks, the
per-aggregate head claim, retries with capped backoff then dead (blocking its aggregate),
leases, and what it measures. Time moves by an injected clock, never by sleeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from fixtures.outbox_pipeline import drain, own_prefix, rows, seed, statuses
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.events.envelope import decode_envelope
from rustok_ref.events.outbox import OutboxStatus
from rustok_ref.events.relay import OutboxRelay, RelayConfig, backlog, stream_name
from rustok_ref.lab.ramp import DeliveryAudit, stream_sightings
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import outbox as outbox_table

pytestmark = pytest.mark.integration

T0 = datetime(2001, 1, 1, tzinfo=UTC)


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def prefix(app_settings: Settings) -> str:
    return own_prefix(app_settings.redis_prefix)


@pytest.fixture
def relay(
    sessions: async_sessionmaker[AsyncSession], redis_client: aioredis.Redis, prefix: str
) -> OutboxRelay:
    return OutboxRelay(sessions, redis_client, prefix=prefix, config=RelayConfig(batch_size=500))


async def test_relay_publishes_each_row_to_its_aggregate_stream_and_marks_it(
    relay: OutboxRelay,
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    events = await seed(sessions, tenants=3, events_each=4)
    assert (await backlog(sessions)).pending >= len(events)

    assert await drain(relay) >= len(events)

    found = await rows(sessions, events)
    for event in events:
        row = found[event.id]
        assert row["status"] == OutboxStatus.PUBLISHED
        assert row["published_at"] is not None
        assert (row["claimed_by"], row["claimed_at"], row["attempts"]) == (None, None, 0)
    entries = await redis_client.xrange(stream_name(prefix, "tenant"))
    mine = {event.id: event for event in events}
    published = {}
    for _, fields in entries:
        event_id = uuid.UUID(fields[b"id"].decode())
        if event_id in mine:
            published[event_id] = fields
    assert published.keys() == mine.keys()
    for event_id, fields in published.items():
        event = mine[event_id]
        assert decode_envelope(fields[b"envelope"]) == event
        assert fields[b"type"].decode() == event.event_type
        assert fields[b"aggregateid"].decode() == str(event.aggregate_id)
        assert fields[b"version"].decode() == str(event.aggregate_version)
        assert fields[b"tenant"].decode() == str(event.tenant_id)
    audit = DeliveryAudit.of(
        s
        for s in await stream_sightings(redis_client, [stream_name(prefix, "tenant")])
        if uuid.UUID(s.event_id) in mine
    )
    assert (audit.events, audit.duplicates, audit.reorderings) == (len(events), 0, 0)
    metrics = relay.metrics()
    assert metrics.published >= len(events)
    assert metrics.lag.p99 is not None and metrics.lag.p99 >= 0
    assert metrics.throughput > 0


async def test_only_the_oldest_unpublished_row_of_an_aggregate_is_claimed(
    relay: OutboxRelay, sessions: async_sessionmaker[AsyncSession]
) -> None:
    events = await seed(sessions, tenants=2, events_each=3)
    mine = {event.id for event in events}
    for version in (1, 2, 3):
        batch = await relay.claim()
        claimed = [row for row in batch if row.id in mine]
        assert sorted((row.aggregateid, row.aggregate_version) for row in claimed) == sorted(
            (event.aggregate_id, version) for event in events if event.aggregate_version == 1
        )
        published, failures = await relay.publish(batch)
        await relay.settle(len(batch), published, failures)
    assert set(await statuses(sessions, events)) == {OutboxStatus.PUBLISHED}


async def rows_by_id(sessions: async_sessionmaker[AsyncSession], row_id: uuid.UUID) -> dict:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        found = await uow.session.execute(outbox_table.select().where(outbox_table.c.id == row_id))
        return dict(found.mappings().one())


async def _probe_rows(sessions: async_sessionmaker[AsyncSession], bad_type: str) -> list[uuid.UUID]:
    """Two rows of one aggregate: a first that no longer decodes (its type is unknown), a
    valid second one behind it."""
    tenant, aggregate = uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4(), uuid.uuid4()]
    common = {
        "aggregatetype": "tenant",
        "aggregateid": aggregate,
        "schema_version": 1,
        "tenant_id": tenant,
        "occurred_at": datetime.now(UTC),
        "correlation_id": "probe",
    }
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        await uow.session.execute(
            insert(outbox_table),
            [
                {**common, "id": ids[0], "aggregate_version": 1, "type": bad_type, "payload": {}},
                {
                    **common,
                    "id": ids[1],
                    "aggregate_version": 2,
                    "type": "tenant.updated",
                    "payload": {"tenant_id": str(aggregate)},
                },
            ],
        )
        await uow.commit()
    return ids


async def test_a_failing_row_retries_with_capped_backoff_then_dies_and_blocks_its_aggregate(
    sessions: async_sessionmaker[AsyncSession], redis_client: aioredis.Redis, prefix: str
) -> None:
    clock = Clock(T0)
    config = RelayConfig(batch_size=500, max_attempts=3, backoff_base_s=1.0, backoff_max_s=1.5)
    relay = OutboxRelay(sessions, redis_client, prefix=prefix, config=config, clock=clock)
    bad_type = "é" * 1500  # the error quoting it is over 2048 bytes, in 2-byte characters
    first, second = await _probe_rows(sessions, bad_type)
    others = await seed(sessions, tenants=1, events_each=2)

    async def state() -> list[tuple[str, int, datetime | None]]:
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            found = await uow.session.execute(
                outbox_table.select().where(outbox_table.c.id.in_([first, second]))
            )
            by_id = {row["id"]: row for row in found.mappings()}
        return [
            (by_id[i]["status"], by_id[i]["attempts"], by_id[i]["next_attempt_at"])
            for i in (first, second)
        ]

    await drain(relay)
    assert await state() == [("pending", 1, T0 + timedelta(seconds=1)), ("pending", 0, None)]
    assert set(await statuses(sessions, others)) == {"published"}  # other aggregates go on
    await drain(relay)  # not due yet: nothing changes
    assert (await state())[0][1] == 1

    clock.now = T0 + timedelta(seconds=1)
    await drain(relay)  # the second delay is capped: min(2 s, 1.5 s)
    assert await state() == [
        ("pending", 2, clock.now + timedelta(seconds=1.5)),
        ("pending", 0, None),
    ]

    clock.now += timedelta(seconds=1.5)
    await drain(relay)
    assert await state() == [("dead", 3, None), ("pending", 0, None)]
    clock.now += timedelta(days=1)
    await drain(relay)  # a dead head keeps blocking its aggregate, visibly
    assert await state() == [("dead", 3, None), ("pending", 0, None)]

    error = (await rows_by_id(sessions, first))["last_error"]
    assert "unknown event type" in error
    assert len(error.encode()) <= 2048 and error.endswith("é")  # cut between characters
    assert relay.metrics().dead >= 1


async def test_a_relay_paused_past_its_lease_cannot_mark_rows_another_relay_reclaimed(
    sessions: async_sessionmaker[AsyncSession], redis_client: aioredis.Redis, prefix: str
) -> None:
    config = RelayConfig(batch_size=500, lease_s=30)
    early, late = Clock(T0), Clock(T0 + timedelta(seconds=31))
    paused = OutboxRelay(sessions, redis_client, prefix=prefix, config=config, clock=early)
    other = OutboxRelay(sessions, redis_client, prefix=prefix, config=config, clock=late)
    events = await seed(sessions, tenants=2, events_each=1)
    mine = {event.id for event in events}

    batch = await paused.claim()
    assert mine <= {row.id for row in batch}
    within = OutboxRelay(
        sessions,
        redis_client,
        prefix=prefix,
        config=config,
        clock=Clock(T0 + timedelta(seconds=29)),
    )
    assert not mine & {row.id for row in await within.claim()}  # the lease still holds
    taken = await other.claim()  # later: the paused relay's lease has run out
    assert mine <= {row.id for row in taken}
    assert other.metrics().reclaimed >= len(mine)
    published, failures = await other.publish(taken)
    await other.settle(len(taken), published, failures)

    published, failures = await paused.publish(batch)  # it wakes up and publishes again...
    result = await paused.settle(len(batch), published, failures)
    assert result.lost >= len(mine)  # ...but cannot mark what it no longer holds
    assert result.published == 0
    for event in events:
        row = await rows_by_id(sessions, event.id)
        assert (row["status"], row["published_at"]) == ("published", late.now)
    sightings = [
        s
        for s in await stream_sightings(redis_client, [stream_name(prefix, "tenant")])
        if uuid.UUID(s.event_id) in mine
    ]
    audit = DeliveryAudit.of(sightings)
    assert (audit.events, audit.duplicates, audit.reorderings) == (len(mine), len(mine), 0)
