"""The event store against the real PostgreSQL, proven with a tiny counter aggregate: append
and replay, optimistic concurrency (one of two concurrent appends wins), snapshots."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.errors import ConflictError
from rustok_ref.events import outbox
from rustok_ref.events.envelope import Catalogue, EventEnvelope, EventPayload, new_envelope
from rustok_ref.events.store import AggregateSpec, EventStore, Versioned
from rustok_ref.events.validation import EntityId, NonNegativeInt32
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import event_snapshots, event_store
from rustok_ref.storage.tables import outbox as outbox_table

pytestmark = pytest.mark.integration

EVENTS = Catalogue()


@EVENTS.register("counter.added", aggregate="counter", key="counter_id")
class Added(EventPayload):
    counter_id: EntityId
    amount: NonNegativeInt32


@EVENTS.register("counter.reset", aggregate="counter", key="counter_id")
class Reset(EventPayload):
    counter_id: EntityId


@dataclass(frozen=True)
class Tally:
    total: int = 0
    events: int = 0


def apply(state: Tally, event: EventEnvelope) -> Tally:
    match event.payload:
        case Added(amount=amount):
            return Tally(state.total + amount, state.events + 1)
        case Reset():
            return Tally(0, state.events + 1)
    raise AssertionError(f"not a counter event: {event.event_type}")


COUNTER = AggregateSpec(name="counter", initial=Tally, apply=apply, state_type=Tally)


def _events(
    current: Versioned[Tally], tenant: uuid.UUID, *amounts: int | None
) -> list[EventEnvelope]:
    """One event per amount (None: a reset), carrying the versions after `current`."""
    return [
        new_envelope(
            Reset(counter_id=current.aggregate_id)
            if amount is None
            else Added(counter_id=current.aggregate_id, amount=amount),
            tenant_id=tenant,
            aggregate_version=current.next_version(offset),
        )
        for offset, amount in enumerate(amounts, start=1)
    ]


async def _append(
    sessions: async_sessionmaker[AsyncSession],
    store: EventStore[Tally],
    tenant: uuid.UUID,
    counter: uuid.UUID,
    *amounts: int | None,
) -> Versioned[Tally]:
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        current = await store.load(uow, counter)
        after = await store.append(uow, current, _events(current, tenant, *amounts))
        await uow.commit()
    return after


async def test_a_new_aggregate_is_the_initial_state_at_version_0(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with UnitOfWork(sessions, tenant_id=uuid.uuid4()) as uow:
        loaded = await EventStore(COUNTER, EVENTS).load(uow, uuid.uuid4())
    assert (loaded.version, loaded.state) == (0, Tally())


async def test_appended_events_replay_into_the_same_state(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EventStore(COUNTER, EVENTS)
    tenant, counter = uuid.uuid4(), uuid.uuid4()
    first = await _append(sessions, store, tenant, counter, 5, 7)
    second = await _append(sessions, store, tenant, counter, None, 3)
    assert (second.version, second.state) == (4, Tally(total=3, events=4))
    assert first.state == Tally(total=12, events=2)

    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        loaded = await store.load(uow, counter)
        history = await store.events(uow, counter)
        later = await store.events(uow, counter, after_version=2)
    assert loaded == second
    assert [e.aggregate_version for e in history] == [1, 2, 3, 4]
    assert [e.event_type for e in history] == [
        "counter.added",
        "counter.added",
        "counter.reset",
        "counter.added",
    ]
    assert history[2:] == later


async def test_of_two_concurrent_appends_at_the_same_version_exactly_one_wins(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EventStore(COUNTER, EVENTS)
    tenant, counter = uuid.uuid4(), uuid.uuid4()
    await _append(sessions, store, tenant, counter, 1)
    both_loaded = asyncio.Barrier(2)

    async def writer(amount: int) -> Versioned[Tally]:
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            current = await store.load(uow, counter)
            await both_loaded.wait()  # both decided at version 1
            after = await store.append(uow, current, _events(current, tenant, amount))
            await uow.commit()
            return after

    outcomes = await asyncio.gather(writer(10), writer(100), return_exceptions=True)

    winners = [o for o in outcomes if isinstance(o, Versioned)]
    losers = [o for o in outcomes if isinstance(o, ConflictError)]
    assert (len(winners), len(losers)) == (1, 1), outcomes
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        assert await store.load(uow, counter) == winners[0]
    assert winners[0].version == 2


async def test_an_append_decided_on_a_stale_version_is_a_conflict(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EventStore(COUNTER, EVENTS)
    tenant, counter = uuid.uuid4(), uuid.uuid4()
    await _append(sessions, store, tenant, counter, 1)
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        stale = await store.load(uow, counter)
    await _append(sessions, store, tenant, counter, 2)
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        with pytest.raises(ConflictError, match="is at version 2") as caught:
            await store.append(uow, stale, _events(stale, tenant, 3))
    assert caught.value.status == 409


async def test_events_must_carry_this_aggregate_and_the_next_versions(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EventStore(COUNTER, EVENTS)
    tenant = uuid.uuid4()
    current = Versioned(uuid.uuid4(), 0, Tally())
    elsewhere = Versioned(uuid.uuid4(), 0, Tally())
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        with pytest.raises(ValueError, match="expected"):
            await store.append(uow, current, _events(elsewhere, tenant, 1))
        skipping = replace(current, version=1)
        with pytest.raises(ValueError, match="expected"):
            await store.append(uow, current, _events(skipping, tenant, 1))


async def test_snapshots_every_n_events_shortcut_the_replay(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store = EventStore(replace(COUNTER, snapshot_every=3), EVENTS)
    tenant, counter = uuid.uuid4(), uuid.uuid4()
    for amount in range(1, 8):  # versions 1..7: snapshots at 3 and 6
        await _append(sessions, store, tenant, counter, amount)
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        snapshot = (await uow.session.execute(select(event_snapshots))).mappings().one()
        assert (snapshot["version"], snapshot["state"]) == (6, {"total": 21, "events": 6})
        full = await store.load(uow, counter, use_snapshot=False)
        trips = RoundTrips()
        trips.watch_engine(engine)
        try:
            from_snapshot = await store.load(uow, counter)
            assert trips.database == 2  # the snapshot, then only the events after it
        finally:
            trips.close()
    assert from_snapshot == full
    assert full.state == Tally(total=28, events=7)

    # proof that the snapshot is what load starts from: doctor it, then ask again
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        await uow.session.execute(
            update(event_snapshots).values(state={"total": 1000, "events": 6})
        )
        await uow.commit()
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        assert (await store.load(uow, counter)).state == Tally(total=1007, events=7)
        assert (await store.load(uow, counter, use_snapshot=False)).state == full.state
        newer_shape = EventStore(replace(COUNTER, snapshot_every=3, state_schema=2), EVENTS)
        assert (await newer_shape.load(uow, counter)).state == full.state


async def test_another_tenant_neither_sees_nor_can_extend_an_aggregate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EventStore(COUNTER, EVENTS)
    owner, intruder, counter = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _append(sessions, store, owner, counter, 5)
    async with UnitOfWork(sessions, tenant_id=intruder) as uow:
        seen = await store.load(uow, counter)
        assert seen.version == 0
        with pytest.raises(ConflictError):
            await store.append(uow, seen, _events(seen, intruder, 1))


async def test_stored_events_can_go_to_the_outbox_in_the_same_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = EventStore(COUNTER, EVENTS)
    tenant = uuid.uuid4()
    for commit in (False, True):
        counter = uuid.uuid4()
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            current = await store.load(uow, counter)
            events = _events(current, tenant, 4)
            await store.append(uow, current, events)
            await outbox.append(uow, *events)
            if commit:
                await uow.commit()
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            stored = await uow.session.scalars(
                select(event_store.c.event_id).where(event_store.c.aggregate_id == counter)
            )
            queued = await uow.session.scalars(
                select(outbox_table.c.id).where(outbox_table.c.aggregateid == counter)
            )
            expected = [events[0].id] if commit else []
            assert (list(stored), list(queued)) == (expected, expected)
