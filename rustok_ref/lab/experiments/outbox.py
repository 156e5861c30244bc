"""The outbox experiments of 05_outbox: transactions failed at random points (do the change
and its event commit or roll back together?) and a real relay process killed after k XADDs
and restarted (the delivery table: committed, delivered, duplicates absorbed, lost,
reordered). The rate ramp is `rustok_ref.lab.ramp.ramp`, called by the notebook as it is.

The relay subprocess is `python -m rustok_ref.cli relay ...`: the `rustok-ref relay`
command itself, killed by its crash hook (`RUSTOK_TEST_HOOKS=1 RUSTOK_CRASH_AT=relay:<k>`:
exit after the k-th XADD, before the batch is marked published). No library measures this:
the subject is our relay, and the audit is `ramp.DeliveryAudit` over the streams and the
handler's calls.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.events import outbox
from rustok_ref.events.consumer import ConsumerConfig, StreamConsumer
from rustok_ref.events.envelope import EventEnvelope, ProductUpdated, new_envelope
from rustok_ref.events.relay import OutboxRelay, stream_name
from rustok_ref.lab.ramp import DeliveryAudit, Sighting, stream_sightings
from rustok_ref.saga import CRASH_EXIT_CODE
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import outbox as outbox_table
from rustok_ref.storage.tables import products

AGGREGATE_TYPE = "product"
PROCESS_LIVENESS_S = 90.0  # a relay process starts and drains these rows in a few seconds
LIVENESS_S = 30.0  # a consumer that works catches up in well under a second

FailAt = Literal["before the change", "after the change", "after the event", "never"]
FAIL_POINTS: tuple[FailAt, ...] = (
    "before the change",
    "after the change",
    "after the event",
    "never",
)


class _InjectedFailureError(Exception):
    """The failure a transaction was given."""


# -- transactions failed at random points ------------------------------------------------


@dataclass(frozen=True)
class TransactionAudit:
    """Transactions that write a product and its event, some failed before commit."""

    by_point: dict[str, int]
    committed: int
    rolled_back: int
    orphan_events: int
    """Outbox rows of rolled-back transactions."""
    changes_without_event: int
    """Committed products with no outbox row."""

    @property
    def violations(self) -> int:
        return self.orphan_events + self.changes_without_event


async def failed_transactions(
    sessions: async_sessionmaker[AsyncSession], *, transactions: int, seed: int
) -> TransactionAudit:
    """`transactions` request transactions (one tenant), each inserting a product and
    appending its event, failing at a seeded random point; then the tables read back."""
    rng = random.Random(seed)
    tenant_id = uuid.uuid4()
    fates: dict[uuid.UUID, FailAt] = {}
    for _ in range(transactions):
        product_id = uuid.uuid4()
        fate = rng.choice(FAIL_POINTS)
        fates[product_id] = fate
        try:
            async with UnitOfWork(sessions, tenant_id=tenant_id) as uow:
                if fate == "before the change":
                    raise _InjectedFailureError(fate)
                await uow.session.execute(
                    insert(products).values(
                        id=product_id,
                        tenant_id=tenant_id,
                        sku=f"sku-{product_id.hex[:12]}",
                        title="lab product",
                        price=100,
                        currency="EUR",
                        stock=1,
                        status="draft",
                        version=1,
                    )
                )
                if fate == "after the change":
                    raise _InjectedFailureError(fate)
                await outbox.append(
                    uow,
                    new_envelope(
                        ProductUpdated(product_id=product_id),
                        tenant_id=tenant_id,
                        aggregate_version=1,
                    ),
                )
                if fate == "after the event":
                    raise _InjectedFailureError(fate)
                await uow.commit()
        except _InjectedFailureError:
            pass
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        written = set(
            (
                await uow.session.scalars(
                    select(products.c.id).where(products.c.tenant_id == tenant_id)
                )
            ).all()
        )
        with_event = set(
            (
                await uow.session.scalars(
                    select(outbox_table.c.aggregateid).where(outbox_table.c.tenant_id == tenant_id)
                )
            ).all()
        )
    committed = {p for p, fate in fates.items() if fate == "never"}
    by_point: dict[str, int] = {
        point: sum(1 for f in fates.values() if f == point) for point in FAIL_POINTS
    }
    return TransactionAudit(
        by_point=by_point,
        committed=len(committed),
        rolled_back=len(fates) - len(committed),
        orphan_events=len(with_event - committed),
        changes_without_event=len(written - with_event),
    )


# -- the relay killed after k XADDs --------------------------------------------------------


async def seed_events(
    sessions: async_sessionmaker[AsyncSession], *, aggregates: int, events_each: int
) -> list[EventEnvelope]:
    """`events_each` events (versions 1..n) for each of `aggregates` products of one new
    tenant, one transaction per event, committed in version order."""
    tenant_id = uuid.uuid4()
    seeded: list[EventEnvelope] = []
    for _ in range(aggregates):
        product_id = uuid.uuid4()
        for version in range(1, events_each + 1):
            event = new_envelope(
                ProductUpdated(product_id=product_id),
                tenant_id=tenant_id,
                aggregate_version=version,
            )
            async with UnitOfWork(sessions, tenant_id=tenant_id) as uow:
                await outbox.append(uow, event)
                await uow.commit()
            seeded.append(event)
    return seeded


async def _drain_elsewhere(
    sessions: async_sessionmaker[AsyncSession], redis: aioredis.Redis, prefix: str
) -> None:
    """Publish rows others left due (to a scratch prefix), so the crashed relay's batches
    are this experiment's rows only."""
    relay = OutboxRelay(sessions, redis, prefix=f"{prefix}scratch:")
    while (await relay.run_once()).claimed:
        pass


def _relay_process(
    settings: Settings, prefix: str, *args: str, crash_after: int | None = None
) -> subprocess.CompletedProcess[str]:
    assert settings.database_url is not None and settings.redis_url is not None
    env = {
        **os.environ,
        "RUSTOK_DATABASE_URL": settings.database_url,
        "RUSTOK_REDIS_URL": settings.redis_url,
        "RUSTOK_REDIS_PREFIX": prefix,
        "RUSTOK_BACKEND": "external",
    }
    if crash_after is not None:
        env |= {"RUSTOK_TEST_HOOKS": "1", "RUSTOK_CRASH_AT": f"relay:{crash_after}"}
    return subprocess.run(
        [sys.executable, "-m", "rustok_ref.cli", "relay", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_LIVENESS_S,
        check=False,
    )


@dataclass(frozen=True)
class CrashDelivery:
    """One relay crash and restart: the delivery table's row."""

    crash_after: int
    """The relay process died after this many XADDs, before marking its batch."""
    committed: int
    stream_entries: int
    """Entries the two relay processes put in the stream (re-sent ones included)."""
    delivered: int
    """Distinct events the consumer handled."""
    duplicates_absorbed: int
    """Re-sent entries the consumer recognised and did not handle again."""
    handled_twice: int
    lost: int
    reorderings: int


async def _consume(
    redis: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
    *,
    prefix: str,
    group: str,
    until_acked: int,
    handled: list[Sighting],
) -> int:
    """Run the consumer (name c1: a restart resumes its group) until `until_acked` more
    entries are acknowledged; returns the duplicates it absorbed."""

    async def no_effect(_uow: UnitOfWork, _event: EventEnvelope) -> None:
        return None

    consumer = StreamConsumer(
        redis,
        sessions,
        group=group,
        handler=no_effect,
        aggregate_types=[AGGREGATE_TYPE],
        prefix=prefix,
        name="c1",
        config=ConsumerConfig(lanes=2, block_ms=20),
        on_handled=lambda e, _: handled.append(
            Sighting(str(e.id), str(e.aggregate_id), e.aggregate_version)
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    deadline = time.monotonic() + LIVENESS_S
    try:
        while consumer.metrics().acked < until_acked:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the consumer acknowledged {consumer.metrics().acked} of {until_acked}"
                )
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
    return consumer.metrics().duplicates


async def relay_crash(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    crash_after: int,
    aggregates: int = 4,
    events_each: int = 5,
    batch: int = 4,
) -> CrashDelivery:
    """Seed events, kill a relay process after `crash_after` XADDs, consume what it sent,
    restart the relay (lease 0 s: take the dead one's claims over at once), consume the
    rest, and audit the stream and the handler's calls against the committed events."""
    prefix = f"{settings.redis_prefix}crash{uuid.uuid4().hex[:8]}:"
    await _drain_elsewhere(sessions, redis, prefix)
    events = await seed_events(sessions, aggregates=aggregates, events_each=events_each)
    killed = await asyncio.to_thread(
        _relay_process, settings, prefix, "--once", "--batch", str(batch), crash_after=crash_after
    )
    if killed.returncode != CRASH_EXIT_CODE:
        raise RuntimeError(f"the relay was to die after {crash_after} XADDs: {killed.stderr}")
    stream = stream_name(prefix, AGGREGATE_TYPE)
    handled: list[Sighting] = []
    group = "crash-audit"
    sent = int(await redis.xlen(stream))
    absorbed = await _consume(
        redis, sessions, prefix=prefix, group=group, until_acked=sent, handled=handled
    )
    restarted = await asyncio.to_thread(
        _relay_process, settings, prefix, "--once", "--batch", str(batch), "--lease", "0s"
    )
    if restarted.returncode != 0:
        raise RuntimeError(f"the restarted relay failed: {restarted.stderr}")
    entries = int(await redis.xlen(stream))
    absorbed += await _consume(
        redis, sessions, prefix=prefix, group=group, until_acked=entries - sent, handled=handled
    )
    ids = {str(event.id) for event in events}
    streamed = DeliveryAudit.of(
        s for s in await stream_sightings(redis, [stream]) if s.event_id in ids
    )
    delivered = DeliveryAudit.of(s for s in handled if s.event_id in ids)
    await redis.delete(stream)
    return CrashDelivery(
        crash_after=crash_after,
        committed=len(events),
        stream_entries=streamed.sightings,
        delivered=delivered.events,
        duplicates_absorbed=absorbed,
        handled_twice=delivered.duplicates,
        lost=len(events) - delivered.events,
        reorderings=max(streamed.reorderings, delivered.reorderings),
    )


async def relay_crashes(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    kills: int,
    seed: int,
    aggregates: int = 4,
    events_each: int = 5,
    batch: int = 4,
) -> list[CrashDelivery]:
    """`relay_crash` `kills` times, each after a seeded random k in 1..events-1."""
    rng = random.Random(seed)
    total = aggregates * events_each
    points: Sequence[int] = sorted(rng.sample(range(1, total), min(kills, total - 1)))
    return [
        await relay_crash(
            settings,
            sessions,
            redis,
            crash_after=k,
            aggregates=aggregates,
            events_each=events_each,
            batch=batch,
        )
        for k in points
    ]
