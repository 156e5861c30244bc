"""Saga definitions: named steps with execute and compensate functions, typed saga data, a
retry policy per step, and the crash points a definition has.

A saga's data is a pydantic model: every step receives the data as the previous step left it
and returns the updated data, which the orchestrator persists (as JSON) before the next step
runs, so a recovering process resumes with exactly what a step produced (the review's sketch
passed nothing between steps). Each call also gets a `StepContext` whose idempotency key,
`"{saga_id}:{step}:{action}"`, is the same on every retry and every re-run after a crash: a
step uses it to take effect at most once (a unique key in its own ledger, or the key a
provider deduplicates on).

Contract for step functions:
- `execute` either takes effect and returns, or raises having taken no effect; run twice with
  the same key it takes effect once and returns the same data;
- `compensate` undoes what `execute` did under `ctx.execute_key`, and is a no-op when that
  execute never took effect (the step that failed is compensated too: a timed-out call may
  have landed); run twice with the same key it undoes once.

Domain code: no I/O framework is imported here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel

D = TypeVar("D", bound=BaseModel)

_SEPARATOR: Final = ":"


class Action(StrEnum):
    EXECUTE = "execute"
    COMPENSATE = "compensate"


class When(StrEnum):
    BEFORE = "before"
    AFTER = "after"


@dataclass(frozen=True)
class StepContext:
    """What a step function knows besides the data: which saga, step, action and attempt."""

    saga_id: UUID
    saga_type: str
    tenant_id: UUID
    step: str
    action: Action
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """The key of the call being made (execute or compensate)."""
        return idempotency_key(self.saga_id, self.step, self.action)

    @property
    def execute_key(self) -> str:
        """The key the step's execute used: a compensation finds what to undo by it."""
        return idempotency_key(self.saga_id, self.step, Action.EXECUTE)


def idempotency_key(saga_id: UUID, step: str, action: Action) -> str:
    """`"{saga_id}:{step}:{action}"`: the same on every retry and every re-run after a crash."""
    return _SEPARATOR.join((str(saga_id), step, action))


StepFunction = Callable[[StepContext, D], Awaitable[D]]


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per call, with capped exponential backoff between them (Temporal's knobs:
    initial interval, backoff coefficient, maximum interval, non-retryable error types).

    The delay before attempt n + 1 is `min(initial_interval_s * backoff**(n - 1),
    max_interval_s)`. Errors of a `non_retryable` type end the call at once (a declined
    payment will not be accepted on the third try).
    """

    attempts: int = 3
    initial_interval_s: float = 0.2
    backoff: float = 2.0
    max_interval_s: float = 20.0
    non_retryable: tuple[type[Exception], ...] = ()

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.initial_interval_s < 0 or self.max_interval_s < 0:
            raise ValueError("retry intervals must not be negative")
        if self.backoff < 1:
            raise ValueError(f"backoff must be at least 1, got {self.backoff}")


@dataclass(frozen=True)
class SagaStep(Generic[D]):
    """One step: `execute`, and `compensate` unless the step has nothing to undo."""

    name: str
    execute: StepFunction[D]
    compensate: StepFunction[D] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        _check_name("step", self.name)

    def function(self, action: Action) -> StepFunction[D] | None:
        return self.execute if action is Action.EXECUTE else self.compensate


@dataclass(frozen=True)
class CrashPoint:
    """Where `RUSTOK_CRASH_AT=<saga>:<step>:<before|after>:<execute|compensate>` kills a
    test run: just before a step function is called, or just after it returned (its effect
    made, the saga log not yet written)."""

    saga: str
    step: str
    when: When
    action: Action

    def __str__(self) -> str:
        return _SEPARATOR.join((self.saga, self.step, self.when, self.action))

    @classmethod
    def parse(cls, spec: str) -> CrashPoint:
        parts = spec.split(_SEPARATOR)
        if len(parts) != 4 or not all(parts):
            raise ValueError(
                f"crash point {spec!r} is not <saga>:<step>:<before|after>:<execute|compensate>"
            )
        saga, step, when, action = parts
        try:
            return cls(saga, step, When(when), Action(action))
        except ValueError as exc:
            raise ValueError(f"crash point {spec!r}: {exc}") from exc


@dataclass(frozen=True)
class SagaDefinition(Generic[D]):
    """A saga type: its name (the persisted `saga_type`), its data model and its steps."""

    name: str
    data_type: type[D]
    steps: tuple[SagaStep[D], ...]

    def __post_init__(self) -> None:
        _check_name("saga", self.name)
        if not self.steps:
            raise ValueError(f"saga {self.name!r} has no steps")
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"saga {self.name!r} repeats a step name: {names}")

    def parse(self, raw: Mapping[str, Any]) -> D:
        """The typed data from its persisted JSON."""
        return self.data_type.model_validate(raw)

    @staticmethod
    def dump(data: BaseModel) -> dict[str, Any]:
        """The JSON the saga log stores."""
        return data.model_dump(mode="json")

    def crash_points(self) -> list[CrashPoint]:
        """Every point a crash can hit: before and after each execute, and each compensate
        of a step that has one, in the order a failing run would reach them."""
        forward = [
            CrashPoint(self.name, step.name, when, Action.EXECUTE)
            for step in self.steps
            for when in When
        ]
        backward = [
            CrashPoint(self.name, step.name, when, Action.COMPENSATE)
            for step in reversed(self.steps)
            if step.compensate is not None
            for when in When
        ]
        return forward + backward


def _check_name(kind: str, name: str) -> None:
    if not name or _SEPARATOR in name or name != name.strip():
        raise ValueError(f"{kind} name {name!r} must be non-empty, unpadded and without ':'")
