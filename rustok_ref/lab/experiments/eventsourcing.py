"""Event sourcing for Order and Payment (the review's A3), checked on what the services stored.

For every order and payment of the given tenants, the aggregate's row (its `version` counts
the changes it went through) beside its stream in `event_store`, replayed from the first
event with no snapshot: `full_history` is the share of the rows' changes that have their
event in the stream, `rebuilt` the share of aggregates whose replayed state equals the row on
every column both carry.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce.orders import ORDER_EVENTS
from rustok_ref.commerce.payments import PAYMENT_EVENTS
from rustok_ref.events.store import EventStore
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import orders, payments

ORDER_COLUMNS = (
    "status",
    "customer_id",
    "currency",
    "total",
    "saga_id",
    "payment_id",
    "cancel_reason",
)
PAYMENT_COLUMNS = (
    "status",
    "order_id",
    "amount",
    "currency",
    "authorisation_id",
    "capture_id",
    "refund_id",
)


@dataclass(frozen=True)
class Replayed:
    """One aggregate: its row's version, its stream's length, and whether the replay agrees."""

    kind: str
    aggregate_id: uuid.UUID
    row_version: int
    stream_version: int
    mismatched: tuple[str, ...]


async def replay_all(
    sessions: async_sessionmaker[AsyncSession], tenants: Sequence[uuid.UUID]
) -> list[Replayed]:
    """Every order and payment of `tenants`, its row beside its replayed stream."""
    found: list[Replayed] = []
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        for kind, table, store, columns in (
            ("order", orders, ORDER_EVENTS, ORDER_COLUMNS),
            ("payment", payments, PAYMENT_EVENTS, PAYMENT_COLUMNS),
        ):
            found += await _replay(uow, kind, table, store, columns, tenants)
    return found


async def _replay(
    uow: UnitOfWork,
    kind: str,
    table: Table,
    store: EventStore[Any],
    columns: Sequence[str],
    tenants: Sequence[uuid.UUID],
) -> list[Replayed]:
    query = select(table).where(table.c.tenant_id.in_(tenants)).order_by(table.c.id)
    rows = (await uow.session.execute(query)).mappings().all()
    found = []
    for row in rows:
        replayed = await store.load(uow, row["id"], use_snapshot=False)
        mismatched = differing(replayed.state, row, columns)
        found.append(Replayed(kind, row["id"], row["version"], replayed.version, mismatched))
    return found


def differing(state: BaseModel, row: Any, columns: Sequence[str]) -> tuple[str, ...]:
    """The columns whose stored value differs from the replayed state's."""
    return tuple(column for column in columns if getattr(state, column) != row[column])


def full_history(replays: Sequence[Replayed]) -> float:
    """Percent of the rows' changes (their versions) that have their event in the stream."""
    changes = sum(r.row_version for r in replays)
    recorded = sum(min(r.row_version, r.stream_version) for r in replays)
    return 100.0 if changes == 0 else 100 * recorded / changes


def rebuilt(replays: Sequence[Replayed]) -> float:
    """Percent of aggregates whose replayed state equals the row and whose stream is as long
    as the row's version."""
    if not replays:
        return 100.0
    agree = sum(not r.mismatched and r.stream_version == r.row_version for r in replays)
    return 100 * agree / len(replays)
