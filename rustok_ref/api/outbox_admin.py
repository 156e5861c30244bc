"""What an admin sees of their tenant's outbox: counts by status and the dead letters.

These run in the request's unit of work, so row-level security limits them to the caller's
tenant; the relay's `backlog()` is the cross-tenant view the worker role and /readyz use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.sql.elements import FunctionFilter

from rustok_ref.events.outbox import OutboxStatus
from rustok_ref.storage.tables import outbox
from rustok_ref.storage.unit_of_work import UnitOfWork

__all__ = ["DeadLetter", "TenantBacklog", "dead_letters", "tenant_backlog"]


@dataclass(frozen=True, slots=True)
class TenantBacklog:
    pending: int
    dead: int
    published: int
    oldest_pending_age_s: float | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead outbox row: it blocks its aggregate's later events until replayed."""

    id: UUID
    aggregatetype: str
    aggregateid: UUID
    type: str
    attempts: int
    last_error: str | None
    occurred_at: datetime


def _count(status: OutboxStatus) -> FunctionFilter[int]:
    return func.count().filter(outbox.c.status == status)


async def tenant_backlog(uow: UnitOfWork) -> TenantBacklog:
    """The tenant's rows by status and its oldest pending row's age, in one query."""
    oldest = func.min(outbox.c.occurred_at).filter(outbox.c.status == OutboxStatus.PENDING)
    query = select(
        _count(OutboxStatus.PENDING),
        _count(OutboxStatus.DEAD),
        _count(OutboxStatus.PUBLISHED),
        func.extract("epoch", func.now() - oldest),
    )
    pending, dead, published, age = (await uow.session.execute(query)).one()
    return TenantBacklog(
        int(pending), int(dead), int(published), None if age is None else float(age)
    )


async def dead_letters(uow: UnitOfWork, limit: int) -> list[DeadLetter]:
    """The tenant's dead rows, oldest first."""
    query = (
        select(
            outbox.c.id,
            outbox.c.aggregatetype,
            outbox.c.aggregateid,
            outbox.c.type,
            outbox.c.attempts,
            outbox.c.last_error,
            outbox.c.occurred_at,
        )
        .where(outbox.c.status == OutboxStatus.DEAD)
        .order_by(outbox.c.seq)
        .limit(limit)
    )
    rows = (await uow.session.execute(query)).all()
    return [DeadLetter(*row) for row in rows]
