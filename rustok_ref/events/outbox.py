"""The transactional outbox: events written in the same transaction as the change.

`append(uow, *envelopes)` inserts into the caller's unit of work, so a rolled-back
transaction leaves no event and a committed one always has its events; the relay publishes
them later (at least once, in order per aggregate; consumers dedupe on the event id).

The table follows Debezium's outbox shape (`id`, `aggregatetype`, `aggregateid`, `type`,
`payload`) plus the envelope's metadata and the relay's bookkeeping; unlike a CDC outbox
(insert-only, read from the WAL) a polling relay marks rows, so rows change status:
pending -> published, or pending -> dead after the relay's last attempt
(and dead -> pending when an operator replays it, `replay_dead`). `seq` (an identity)
orders an aggregate's rows: a writer changes its aggregate's row (taking the row lock)
before it appends, so within one aggregate the insert order is the commit order.

The rows are tenant-owned (row-level security): a request can write and see only its own
tenant's events; the relay and `prune` run as the worker role.

Why not a library: the write path is one INSERT in the caller's transaction. The Python
packages that offer an outbox (eventsource-py, for one) bring their own store, driver
(asyncpg) and sessions, so the event could not share the caller's unit of work, its role and
its tenant, which is the whole point.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Text, bindparam, cast, delete, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.events.envelope import CATALOGUE, METADATA_FIELDS, Catalogue, EventEnvelope
from rustok_ref.storage.roles import DbRole
from rustok_ref.storage.tables import outbox
from rustok_ref.storage.unit_of_work import UnitOfWork


class OutboxStatus(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    DEAD = "dead"


# the payload arrives already serialised (EventEnvelope.payload_json): cast, not re-encode
_INSERT = insert(outbox).values(payload=cast(bindparam("payload_text", type_=Text), JSONB))


def _row(envelope: EventEnvelope) -> dict[str, Any]:
    return {
        "id": envelope.id,
        "aggregatetype": envelope.aggregate_type,
        "aggregateid": envelope.aggregate_id,
        "aggregate_version": envelope.aggregate_version,
        "type": envelope.event_type,
        "payload_text": envelope.payload_json.decode(),
        **envelope.metadata(),
    }


async def append(uow: UnitOfWork, *envelopes: EventEnvelope) -> None:
    """Add the events to the unit of work's transaction (one statement, one round trip).

    An `EventEnvelope` is validated when it is built, so nothing unvalidated reaches the
    table; a request's unit of work may only write events of its own tenant (RLS).
    """
    if envelopes:
        await uow.session.execute(_INSERT, [_row(envelope) for envelope in envelopes])


def envelope_from_row(row: Mapping[str, Any], catalogue: Catalogue | None = None) -> EventEnvelope:
    """The envelope an outbox row holds (validated again, as anything read back is)."""
    return (CATALOGUE if catalogue is None else catalogue).restore(
        event_type=row["type"],
        event_id=row["id"],
        payload=row["payload"],
        aggregate_version=row["aggregate_version"],
        **{name: row[name] for name in METADATA_FIELDS},
    )


async def prune(
    sessions: async_sessionmaker[AsyncSession],
    older_than: timedelta,
    *,
    now: datetime | None = None,
    batch_size: int = 10_000,
) -> int:
    """Delete published rows published before `now - older_than` (now: the database's
    clock unless given), in batches of `batch_size`, each its own transaction. Pending and
    dead rows stay: a dead row blocks its aggregate until someone deals with it."""
    if older_than < timedelta(0) or batch_size < 1:
        raise ValueError("older_than must not be negative and batch_size must be positive")
    cutoff = func.now() - older_than if now is None else literal(now - older_than)
    batch = (
        select(outbox.c.id)
        .where(outbox.c.status == OutboxStatus.PUBLISHED, outbox.c.published_at < cutoff)
        .limit(batch_size)
        .scalar_subquery()
    )
    removed = 0
    while True:
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            result = await uow.session.execute(delete(outbox).where(outbox.c.id.in_(batch)))
            await uow.commit()
        count: int = result.rowcount  # type: ignore[attr-defined]
        removed += count
        if count < batch_size:
            return removed


async def replay_dead(uow: UnitOfWork, event_id: UUID) -> bool:
    """Make a dead row due again with a fresh attempt budget (its `last_error` stays until
    it is published), so the relay takes it up and unblocks its aggregate. False when the
    unit of work sees no dead row with that id (the caller commits)."""
    result = await uow.session.execute(
        update(outbox)
        .where(outbox.c.id == event_id, outbox.c.status == OutboxStatus.DEAD)
        .values(
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=None,
            claimed_by=None,
            claimed_at=None,
        )
    )
    replayed: int = result.rowcount  # type: ignore[attr-defined]
    return replayed == 1
