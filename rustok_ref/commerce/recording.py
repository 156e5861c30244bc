"""How a commerce change is written: the row under an optimistic version check, and its
events to the outbox (and, for an event-sourced aggregate, to the event store) in the
caller's unit of work, so the change and its events commit or roll back together.

A version check is the `WHERE version = :read` of the UPDATE: of two transactions that read
the same version, the second to update finds no row and gets a ConflictError, so two
concurrent transitions cannot both win. An event-sourced aggregate's events go through the
store first, whose own check (the primary key on its version) settles the same race.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import RowMapping, Table, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rustok_ref.errors import ConflictError
from rustok_ref.events import outbox
from rustok_ref.events.envelope import EventEnvelope, EventPayload, new_envelope
from rustok_ref.events.store import EventStore, Versioned
from rustok_ref.storage.tables import step_effects
from rustok_ref.storage.unit_of_work import UnitOfWork

S = TypeVar("S")


def tenant_of(uow: UnitOfWork) -> UUID:
    """The unit of work's tenant: commerce changes are always some tenant's."""
    if uow.tenant_id is None:
        raise ValueError("commerce changes need a tenant's unit of work")
    return uow.tenant_id


def check_expected(kind: str, row_id: UUID, *, found: int, expected: int | None) -> None:
    """ConflictError when the caller decided on a version (`expected`) the row is not at."""
    if expected is not None and expected != found:
        raise ConflictError(
            f"{kind} {row_id} is at version {found}, not the {expected} the change expects",
            extra={"id": str(row_id), "version": found, "expected": expected},
        )


async def publish(
    uow: UnitOfWork,
    tenant_id: UUID,
    payloads: Sequence[EventPayload],
    *,
    aggregate_version: int | None = None,
) -> list[EventEnvelope]:
    """The payloads as events in the outbox (one statement)."""
    events = [
        new_envelope(payload, tenant_id=tenant_id, aggregate_version=aggregate_version)
        for payload in payloads
    ]
    await outbox.append(uow, *events)
    return events


async def record(
    uow: UnitOfWork,
    store: EventStore[S],
    current: Versioned[S],
    payloads: Sequence[EventPayload],
    *,
    tenant_id: UUID,
) -> Versioned[S]:
    """Append the payloads to an event-sourced aggregate (store and outbox); the new state."""
    events = [
        new_envelope(payload, tenant_id=tenant_id, aggregate_version=current.next_version(n))
        for n, payload in enumerate(payloads, start=1)
    ]
    after = await store.append(uow, current, events)
    await outbox.append(uow, *events)
    return after


async def update_row(
    uow: UnitOfWork,
    table: Table,
    row_id: UUID,
    *,
    read_version: int,
    values: Mapping[str, Any],
    new_version: int | None = None,
) -> RowMapping:
    """Update the row if it is still at `read_version` (and set it to `new_version`, by
    default the next); ConflictError if another transaction changed it first."""
    row = (
        (
            await uow.session.execute(
                update(table)
                .where(table.c.id == row_id, table.c.version == read_version)
                .values(
                    **values,
                    version=read_version + 1 if new_version is None else new_version,
                    updated_at=func.now(),
                )
                .returning(*table.c)
            )
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise ConflictError(
            f"{table.name} {row_id} changed concurrently; the change was decided at version "
            f"{read_version}",
            extra={"id": str(row_id), "expected": read_version},
        )
    return row


async def claim_effect(uow: UnitOfWork, key: str) -> bool:
    """Record that the effect under `key` is applied in this transaction; False if it was
    already (the caller then skips it: a re-run after a crash, a retry)."""
    inserted = await uow.session.execute(
        pg_insert(step_effects)
        .values(idempotency_key=key, tenant_id=uow.tenant_id)
        .on_conflict_do_nothing()
        .returning(step_effects.c.idempotency_key)
    )
    return inserted.first() is not None
