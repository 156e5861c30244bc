"""The review's circuit breaker sketch (P1.2), ported as written: the reviewed variant.

Kept beside the recommended `CircuitBreaker` so that tests and notebooks can measure both.
Its defects are kept on purpose (seed/README.md, last section):

- failures are counted cumulatively while closed and never reset by a success, so a
  breaker with `failure_threshold` 5 opens after 5 failures spread over any number of
  successes;
- successes are counted while closed too, and nothing resets them on the way to half-open,
  so after a long healthy spell a single successful trial closes the breaker, whatever
  `success_threshold` says;
- `half_open_max_calls` is never enforced: the sketch calls `can_make_trial_call()` without
  defining it or counting trials, so every caller in half-open goes through;
- state is read and changed in separate critical sections (`get_state`, then
  `should_attempt_reset`, then `transition_to_half_open`), and any failure, even one that
  arrives late while open, restarts the open period.

The sketch leaves three helpers undefined; they are filled in with the least they can do:
`should_attempt_reset` is "`timeout` has passed since `opened_at`", `transition_to_half_open`
only sets the state, and `can_make_trial_call` admits everyone, so `TooManyTrialCalls` never
happens. `CircuitOpen` becomes the taxonomy's `CircuitBreakerOpenError` (the sketch computes
no retry delay, so it carries the default), and `RequestFailed(e)` re-raises `e`.
The sketch is async only; `call` runs the same logic for sync callables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from rustok_ref.errors import CircuitBreakerOpenError
from rustok_ref.resilience.breaker import CircuitState

__all__ = ["SketchedCircuitBreaker", "SketchedMetrics"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True)
class SketchedMetrics:
    """The sketch's `CircuitBreakerMetrics`."""

    state: CircuitState
    failure_count: int
    success_count: int


class SketchedCircuitBreaker:
    """The review's `CircuitBreaker` with its `CircuitBreakerConfig` fields as arguments."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        success_threshold: int = 2,
        timeout_s: float = 60.0,
        half_open_max_calls: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.success_threshold = success_threshold
        self.timeout_s = timeout_s
        self.half_open_max_calls = half_open_max_calls  # stored, never read: as sketched
        self._clock = clock
        self._lock = threading.Lock()  # the sketch's RwLock around State
        self._state = CircuitState.CLOSED
        self._failure_count = 0
        self._success_count = 0
        self._last_failure_time: float | None = None  # written, never read: as sketched
        self._opened_at: float | None = None

    @property
    def state(self) -> CircuitState:
        """`get_state()`."""
        with self._lock:
            return self._state

    def metrics(self) -> SketchedMetrics:
        """`get_metrics()`."""
        with self._lock:
            return SketchedMetrics(self._state, self._failure_count, self._success_count)

    def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        self._before_call()
        try:
            result = fn(*args, **kwargs)
        except Exception:
            self._on_failure()
            raise
        self._on_success()
        return result

    async def call_async(
        self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """The sketch's `call`."""
        self._before_call()
        try:
            result = await fn(*args, **kwargs)
        except Exception:
            self._on_failure()
            raise
        self._on_success()
        return result

    def _before_call(self) -> None:
        current_state = self.state
        if current_state is CircuitState.OPEN:
            if self._should_attempt_reset():
                self._transition_to_half_open()
            else:
                raise CircuitBreakerOpenError(f"circuit breaker {self.name!r} is open")
        # HalfOpen: the sketch asks can_make_trial_call(), which nothing defines or counts
        # for, so every caller goes through and TooManyTrialCalls never happens.

    def _should_attempt_reset(self) -> bool:
        with self._lock:
            return self._opened_at is not None and self._clock() - self._opened_at >= self.timeout_s

    def _transition_to_half_open(self) -> None:
        with self._lock:
            self._state = CircuitState.HALF_OPEN

    def _on_success(self) -> None:
        with self._lock:
            self._success_count += 1
            if (
                self._state is CircuitState.HALF_OPEN
                and self._success_count >= self.success_threshold
            ):
                self._state = CircuitState.CLOSED
                self._failure_count = 0
                self._success_count = 0

    def _on_failure(self) -> None:
        with self._lock:
            self._failure_count += 1
            self._last_failure_time = self._clock()
            if self._failure_count >= self.failure_threshold:
                self._state = CircuitState.OPEN
                self._opened_at = self._clock()
