"""The persisted saga log: one row per saga (`saga_instances`) and an append-only row per
call outcome (`saga_steps`).

The shape follows Eventuate Tram's saga_instance (type, state, data, compensating) with
MassTransit's version column: every change of an instance is an UPDATE that names the
version it read, so two runners of one saga cannot both advance it; the loser gets a
`ConflictError` and stops. A step's completion changes the instance and appends its step-log
row in one statement (a data-modifying CTE), so the two never disagree.

Instances are tenant-owned rows: a saga is read and written under its tenant with the app
role, and only the cross-tenant scans (`stale`, `failed` without a tenant) run as the worker
role.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

from sqlalchemy import RowMapping, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningUpdate

from rustok_ref.errors import ConflictError, NotFoundError
from rustok_ref.saga.definition import Action
from rustok_ref.storage.roles import DbRole
from rustok_ref.storage.tables import saga_instances, saga_steps
from rustok_ref.storage.unit_of_work import UnitOfWork

_ERROR_LIMIT: Final = 2000  # characters of an error message kept in the log


class SagaState(StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Nothing more will happen without a human: completed, compensated or parked."""
        return self in (SagaState.COMPLETED, SagaState.COMPENSATED, SagaState.FAILED)


UNFINISHED: Final = (SagaState.RUNNING, SagaState.COMPENSATING)
"""The states a crash can leave a saga in, which recovery picks up."""


class Outcome(StrEnum):
    COMPLETED = "completed"
    SKIPPED = "skipped"  # a step with nothing to compensate
    ERROR = "error"  # one failed attempt


@dataclass(frozen=True)
class SagaInstance:
    """A saga's row: where it is (state, step index, direction) and its data as JSON.

    `step_index` is the step that runs next: forward while running (the number of steps
    completed), the step to compensate next while compensating or parked.
    """

    id: UUID
    saga_type: str
    tenant_id: UUID
    state: SagaState
    step_index: int
    data: dict[str, Any]
    compensating: bool
    failure_reason: str | None
    attempts: int
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> SagaInstance:
        return cls(
            id=row["id"],
            saga_type=row["saga_type"],
            tenant_id=row["tenant_id"],
            state=SagaState(row["state"]),
            step_index=row["step_index"],
            data=dict(row["data"]),
            compensating=row["compensating"],
            failure_reason=row["failure_reason"],
            attempts=row["attempts"],
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True)
class StepRecord:
    """One row of the step log."""

    step_index: int
    step_name: str
    action: Action
    outcome: Outcome
    attempt: int
    idempotency_key: str
    error: str | None
    at: datetime


@dataclass(frozen=True)
class StepEntry:
    """What a call did, to append to the step log."""

    step_index: int
    step_name: str
    action: Action
    outcome: Outcome
    attempt: int
    idempotency_key: str
    error: str | None = None


@dataclass(frozen=True)
class Change:
    """A new position for an instance; its version goes up by one."""

    state: SagaState
    step_index: int | None = None  # None keeps the step
    data: dict[str, Any] | None = None  # None keeps the data
    failure_reason: str | None = None  # None keeps the reason

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "state": self.state.value,
            "compensating": self.state
            in (SagaState.COMPENSATING, SagaState.COMPENSATED, SagaState.FAILED),
        }
        if self.step_index is not None:
            values["step_index"] = self.step_index
        if self.data is not None:
            values["data"] = self.data
        if self.failure_reason is not None:
            values["failure_reason"] = self.failure_reason
        return values


def error_text(exc: BaseException) -> str:
    """`Type: message`, cut to what the log keeps."""
    return f"{type(exc).__name__}: {exc}"[:_ERROR_LIMIT]


def _step_row(instance: SagaInstance, entry: StepEntry) -> dict[str, Any]:
    return {
        "saga_id": instance.id,
        "tenant_id": instance.tenant_id,
        "step_index": entry.step_index,
        "step_name": entry.step_name,
        "action": entry.action.value,
        "outcome": entry.outcome.value,
        "attempt": entry.attempt,
        "idempotency_key": entry.idempotency_key,
        "error": entry.error,
    }


class SagaLog:
    """Reads and version-checked writes of saga instances and their step log."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self,
        uow: UnitOfWork,
        *,
        saga_id: UUID,
        saga_type: str,
        tenant_id: UUID,
        data: dict[str, Any],
    ) -> SagaInstance:
        """Insert a running saga at step 0 in the caller's unit of work (so it can start in
        the same transaction as the change that asks for it); the caller commits."""
        row = (
            (
                await uow.session.execute(
                    insert(saga_instances)
                    .values(
                        id=saga_id,
                        saga_type=saga_type,
                        tenant_id=tenant_id,
                        state=SagaState.RUNNING.value,
                        data=data,
                    )
                    .returning(*saga_instances.c)
                )
            )
            .mappings()
            .one()
        )
        return SagaInstance.from_row(row)

    async def get(self, saga_id: UUID, *, tenant_id: UUID) -> SagaInstance:
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            row = (
                (await uow.session.execute(select(saga_instances).filter_by(id=saga_id)))
                .mappings()
                .one_or_none()
            )
        if row is None:
            raise NotFoundError(f"saga {saga_id} not found")
        return SagaInstance.from_row(row)

    async def steps(self, saga_id: UUID, *, tenant_id: UUID) -> list[StepRecord]:
        """The saga's step log, oldest first."""
        query = select(saga_steps).filter_by(saga_id=saga_id).order_by(saga_steps.c.id)
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            rows = (await uow.session.execute(query)).mappings().all()
        return [
            StepRecord(
                step_index=row["step_index"],
                step_name=row["step_name"],
                action=Action(row["action"]),
                outcome=Outcome(row["outcome"]),
                attempt=row["attempt"],
                idempotency_key=row["idempotency_key"],
                error=row["error"],
                at=row["at"],
            )
            for row in rows
        ]

    async def advance(
        self, instance: SagaInstance, change: Change, entry: StepEntry | None = None
    ) -> SagaInstance:
        """Move the instance to `change` if it is still at `instance.version`, appending
        `entry` to the step log in the same statement; `ConflictError` if another runner
        changed it first."""
        updated = self._update(
            saga_instances.c.id == instance.id, saga_instances.c.version == instance.version
        ).values(**change.values())
        if entry is None:
            statement: Any = updated
        else:
            moved = updated.cte("moved")
            row = _step_row(instance, entry)
            logged = insert(saga_steps).from_select(
                list(row),
                select(
                    *(literal(value, saga_steps.c[name].type) for name, value in row.items())
                ).select_from(moved),
            )
            statement = select(moved).add_cte(logged.cte("logged"))
        async with UnitOfWork(self._sessions, tenant_id=instance.tenant_id) as uow:
            row_after = (await uow.session.execute(statement)).mappings().one_or_none()
            await uow.commit()
        if row_after is None:
            raise ConflictError(
                f"saga {instance.id} changed under this runner (it read version "
                f"{instance.version}); another runner owns it now"
            )
        return SagaInstance.from_row(row_after)

    async def record(self, instance: SagaInstance, entry: StepEntry) -> None:
        """Append a step-log row without changing the instance (a failed attempt)."""
        async with UnitOfWork(self._sessions, tenant_id=instance.tenant_id) as uow:
            await uow.session.execute(insert(saga_steps).values(**_step_row(instance, entry)))
            await uow.commit()

    async def claim(
        self,
        saga_id: UUID,
        *,
        tenant_id: UUID,
        states: Sequence[SagaState],
        idle_for: timedelta = timedelta(0),
        change: Change | None = None,
    ) -> SagaInstance | None:
        """Take a saga up for another run: if it is in one of `states` and unchanged for
        `idle_for`, count the attempt, apply `change` and bump the version (a runner still
        holding the old version then loses its next write). None when it does not qualify."""
        statement = self._update(
            saga_instances.c.id == saga_id,
            saga_instances.c.state.in_([state.value for state in states]),
            saga_instances.c.updated_at <= func.now() - idle_for,
        ).values(attempts=saga_instances.c.attempts + 1, **(change.values() if change else {}))
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            row = (await uow.session.execute(statement)).mappings().one_or_none()
            await uow.commit()
        return None if row is None else SagaInstance.from_row(row)

    async def stale(self, *, idle_for: timedelta, limit: int) -> list[SagaInstance]:
        """Running or compensating sagas of every tenant unchanged for `idle_for`, oldest
        first: what a crash left behind (worker role: it crosses tenants)."""
        return await self._scan(UNFINISHED, idle_for=idle_for, limit=limit)

    async def failed(self, *, limit: int = 100) -> list[SagaInstance]:
        """Parked sagas of every tenant, oldest first, with their reasons."""
        return await self._scan((SagaState.FAILED,), idle_for=timedelta(0), limit=limit)

    async def _scan(
        self, states: Sequence[SagaState], *, idle_for: timedelta, limit: int
    ) -> list[SagaInstance]:
        query = (
            select(saga_instances)
            .where(
                saga_instances.c.state.in_([state.value for state in states]),
                saga_instances.c.updated_at <= func.now() - idle_for,
            )
            .order_by(saga_instances.c.updated_at)
            .limit(limit)
        )
        async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            rows = (await uow.session.execute(query)).mappings().all()
        return [SagaInstance.from_row(row) for row in rows]

    @staticmethod
    def _update(*where: Any) -> ReturningUpdate[Any]:
        return (
            update(saga_instances)
            .where(*where)
            .values(version=saga_instances.c.version + 1, updated_at=func.now())
            .returning(*saga_instances.c)
        )
