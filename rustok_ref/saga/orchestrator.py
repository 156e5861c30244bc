"""The saga orchestrator: runs a saga's steps forward, carrying data, and on a step's failure
(after its retries) compensates in reverse; every move is persisted, so a crash at any point
leaves a saga that `recover()` finishes or undoes.

How it runs a saga (Eventuate Tram's saga log, Temporal's retry policy, MassTransit's
optimistic version; `anchors.md` §4):
- `begin` persists the saga (optionally in the caller's transaction); `run` drives it;
  `start` does both. Each step's returned data is written with the step's completion before
  the next step starts.
- A call is retried with capped exponential backoff (the step's `RetryPolicy`, an injected
  `sleep`); each failed attempt is appended to the step log.
- When a step fails for good, the saga turns to compensating at that step: the failed step
  is compensated too (a timed-out call may have landed; compensations are no-ops for an
  execute that never took effect), then every earlier step, last first.
- A compensation that fails for good parks the saga as `failed` with its reason, visible in
  `SagaLog.failed()`; `retry()` resumes compensating once the fault is gone.
- Listeners registered with `on_finish` hear every saga this orchestrator drives to an end
  (the API counts outcomes with one, instead of counting the saga log's rows).
- `recover()` takes up sagas left running or compensating (by a crash, or a lost database)
  and idle for `idle_for`, and drives each on in the direction its row says: a running saga
  re-runs its current step under the same idempotency key and goes on, a compensating one
  goes on compensating. Either way it ends completed, compensated or parked, never halfway.
  `idle_for` must exceed the longest step (with its retries): a recovery that takes up a
  saga still being run is safe (the steps are idempotent and the slower runner loses its
  next version check) but does the work twice.

Why not a library: Temporal needs its server (and its test server is a binary download);
the embedded Python saga packages either keep nothing (sagah, py-api-saga, the review's
sketch) or bring their own persisted state model and Python 3.12+ (python-saga-orchestrator),
so none writes its log into our tables under the tenant's row-level security, hands steps a
stable idempotency key, or exposes crash points for the recovery tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final
from uuid import UUID, uuid4

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from rustok_ref.errors import ConflictError, InvalidTransitionError
from rustok_ref.saga.crash import CrashHook
from rustok_ref.saga.definition import (
    Action,
    CrashPoint,
    D,
    RetryPolicy,
    SagaDefinition,
    SagaStep,
    StepContext,
    When,
    idempotency_key,
)
from rustok_ref.saga.log import (
    UNFINISHED,
    Change,
    Outcome,
    SagaInstance,
    SagaLog,
    SagaState,
    StepEntry,
    error_text,
)
from rustok_ref.storage.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Sleep = Callable[[float], Awaitable[None]]
FinishListener = Callable[[SagaInstance], None]
DEFAULT_RECOVERY_BATCH: Final = 100


@dataclass(frozen=True)
class RecoveryReport:
    """What `recover()` did: each saga it drove, as it ended, and those it left, with why."""

    finished: list[SagaInstance] = field(default_factory=list)
    skipped: list[tuple[UUID, str]] = field(default_factory=list)


class SagaOrchestrator:
    """Runs, recovers and retries the sagas of the definitions it is given."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        definitions: Iterable[SagaDefinition[Any]],
        *,
        sleep: Sleep = asyncio.sleep,
        crash_hook: CrashHook | None = None,
    ) -> None:
        self._definitions: dict[str, SagaDefinition[Any]] = {}
        for definition in definitions:
            if definition.name in self._definitions:
                raise ValueError(f"two saga definitions are named {definition.name!r}")
            self._definitions[definition.name] = definition
        self.log = SagaLog(sessions)
        self._sessions = sessions
        self._sleep = sleep
        self._crash_hook = crash_hook
        self._finish_listeners: list[FinishListener] = []

    def on_finish(self, listener: FinishListener) -> None:
        """Call `listener` with each saga `run` ends (completed, compensated or parked)."""
        self._finish_listeners.append(listener)

    async def begin(
        self,
        definition: SagaDefinition[D],
        data: D,
        *,
        tenant_id: UUID,
        saga_id: UUID | None = None,
        uow: UnitOfWork | None = None,
    ) -> SagaInstance:
        """Persist a new saga, running at its first step, without running it. Given `uow`,
        the saga is written in that transaction (the caller commits)."""
        if self._definitions.get(definition.name) is not definition:
            raise ValueError(f"saga {definition.name!r} is not registered with this orchestrator")
        new_id = saga_id or uuid4()

        async def create(into: UnitOfWork) -> SagaInstance:
            return await self.log.create(
                into,
                saga_id=new_id,
                saga_type=definition.name,
                tenant_id=tenant_id,
                data=definition.dump(data),
            )

        if uow is not None:
            return await create(uow)
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as own:
            instance = await create(own)
            await own.commit()
        return instance

    async def start(
        self,
        definition: SagaDefinition[D],
        data: D,
        *,
        tenant_id: UUID,
        saga_id: UUID | None = None,
    ) -> SagaInstance:
        """Persist a new saga and run it to the end (completed, compensated or failed)."""
        return await self.run(
            await self.begin(definition, data, tenant_id=tenant_id, saga_id=saga_id)
        )

    async def run(self, instance: SagaInstance) -> SagaInstance:
        """Drive a saga from where `instance` (as `begin` returned it) stands to its end.
        `ConflictError` if another runner moved it meanwhile."""
        ids = {"tenant_id": str(instance.tenant_id), "saga_id": str(instance.id)}
        with tracer.start_as_current_span(f"saga.run {instance.saga_type}", attributes=ids):
            definition = self._definitions[instance.saga_type]
            data = definition.parse(instance.data)
            while not instance.state.finished:
                step = definition.steps[instance.step_index]
                if instance.state is SagaState.RUNNING:
                    instance, data = await self._execute(definition, step, instance, data)
                else:
                    instance, data = await self._compensate(definition, step, instance, data)
        for listener in self._finish_listeners:
            listener(instance)
        return instance

    async def retry(self, saga_id: UUID, *, tenant_id: UUID) -> SagaInstance:
        """Resume compensating a parked (`failed`) saga; `InvalidTransitionError` for a saga
        in any other state, `NotFoundError` for an unknown one."""
        claimed = await self.log.claim(
            saga_id,
            tenant_id=tenant_id,
            states=(SagaState.FAILED,),
            change=Change(SagaState.COMPENSATING),
        )
        if claimed is None:
            current = await self.log.get(saga_id, tenant_id=tenant_id)
            raise InvalidTransitionError(
                f"saga {saga_id} is {current.state}; only a failed saga can be retried"
            )
        return await self.run(claimed)

    async def recover(
        self, *, idle_for: timedelta, limit: int = DEFAULT_RECOVERY_BATCH
    ) -> RecoveryReport:
        """Finish or undo every saga (of any tenant) left running or compensating and idle
        for `idle_for`; at start-up and from `rustok-ref saga recover`."""
        report = RecoveryReport()
        for found in await self.log.stale(idle_for=idle_for, limit=limit):
            if found.saga_type not in self._definitions:
                report.skipped.append((found.id, f"no definition for {found.saga_type!r}"))
                continue
            claimed = await self.log.claim(
                found.id, tenant_id=found.tenant_id, states=UNFINISHED, idle_for=idle_for
            )
            if claimed is None:
                report.skipped.append((found.id, "changed since the scan: another runner has it"))
                continue
            try:
                report.finished.append(await self.run(claimed))
            except ConflictError as exc:
                report.skipped.append((found.id, exc.detail))
        return report

    async def _execute(
        self,
        definition: SagaDefinition[D],
        step: SagaStep[D],
        instance: SagaInstance,
        data: D,
    ) -> tuple[SagaInstance, D]:
        self._crash(definition, step, When.BEFORE, Action.EXECUTE)
        try:
            data, attempt, key = await self._call(definition, step, Action.EXECUTE, instance, data)
        except Exception as exc:
            reason = f"{step.name} failed: {error_text(exc)}"
            logger.warning("saga %s (%s) compensates: %s", instance.id, instance.saga_type, reason)
            turned = await self.log.advance(
                instance, Change(SagaState.COMPENSATING, failure_reason=reason)
            )
            return turned, data
        self._crash(definition, step, When.AFTER, Action.EXECUTE)
        following = instance.step_index + 1
        state = SagaState.COMPLETED if following == len(definition.steps) else SagaState.RUNNING
        entry = StepEntry(
            instance.step_index, step.name, Action.EXECUTE, Outcome.COMPLETED, attempt, key
        )
        moved = await self.log.advance(
            instance, Change(state, following, definition.dump(data)), entry
        )
        return moved, data

    async def _compensate(
        self,
        definition: SagaDefinition[D],
        step: SagaStep[D],
        instance: SagaInstance,
        data: D,
    ) -> tuple[SagaInstance, D]:
        index = instance.step_index
        if step.compensate is None:
            key = idempotency_key(instance.id, step.name, Action.COMPENSATE)
            entry = StepEntry(index, step.name, Action.COMPENSATE, Outcome.SKIPPED, 0, key)
        else:
            self._crash(definition, step, When.BEFORE, Action.COMPENSATE)
            try:
                data, attempt, key = await self._call(
                    definition, step, Action.COMPENSATE, instance, data
                )
            except Exception as exc:
                reason = f"compensation of {step.name} failed: {error_text(exc)}"
                logger.error("saga %s (%s) parked: %s", instance.id, instance.saga_type, reason)
                parked = await self.log.advance(
                    instance, Change(SagaState.FAILED, failure_reason=reason)
                )
                return parked, data
            self._crash(definition, step, When.AFTER, Action.COMPENSATE)
            entry = StepEntry(index, step.name, Action.COMPENSATE, Outcome.COMPLETED, attempt, key)
        change = (
            Change(SagaState.COMPENSATED, 0, definition.dump(data))
            if index == 0
            else Change(SagaState.COMPENSATING, index - 1, definition.dump(data))
        )
        return await self.log.advance(instance, change, entry), data

    async def _call(
        self,
        definition: SagaDefinition[D],
        step: SagaStep[D],
        action: Action,
        instance: SagaInstance,
        data: D,
    ) -> tuple[D, int, str]:
        """Call the step's `action` under its retry policy; each failed attempt goes to the
        step log. Returns the new data, the attempt that succeeded and the idempotency key."""
        function = step.function(action)
        if function is None:
            raise ValueError(f"step {step.name!r} has no {action} function")
        attempts = 0
        key = idempotency_key(instance.id, step.name, action)

        async def once() -> D:
            nonlocal attempts
            attempts += 1
            context = StepContext(
                instance.id, definition.name, instance.tenant_id, step.name, action, attempts
            )
            attributes: dict[str, str | int] = {
                "tenant_id": str(instance.tenant_id),
                "saga_id": str(instance.id),
                "saga.attempt": attempts,
            }
            try:
                with tracer.start_as_current_span(
                    f"saga.{action} {step.name}", attributes=attributes
                ):
                    return await function(context, data)
            except Exception as exc:
                logger.warning(
                    "saga %s: %s of %s failed (attempt %d): %s",
                    instance.id,
                    action,
                    step.name,
                    attempts,
                    error_text(exc),
                )
                await self.log.record(
                    instance,
                    StepEntry(
                        instance.step_index,
                        step.name,
                        action,
                        Outcome.ERROR,
                        attempts,
                        key,
                        error_text(exc),
                    ),
                )
                raise

        result: D = await _retrying(step.retry, self._sleep)(once)
        return result, attempts, key

    def _crash(
        self, definition: SagaDefinition[Any], step: SagaStep[Any], when: When, action: Action
    ) -> None:
        if self._crash_hook is not None:
            self._crash_hook(CrashPoint(definition.name, step.name, when, action))


def _retrying(policy: RetryPolicy, sleep: Sleep) -> AsyncRetrying:
    """tenacity for the policy: retry `Exception`s that are not `non_retryable` (never a
    cancellation), wait `initial * backoff**(n - 1)` capped at the maximum, re-raise the last
    error."""

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, Exception) and not isinstance(exc, policy.non_retryable)

    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(
            multiplier=policy.initial_interval_s,
            exp_base=policy.backoff,
            max=policy.max_interval_s,
        ),
        retry=retry_if_exception(retryable),
        sleep=sleep,
        reraise=True,
    )
