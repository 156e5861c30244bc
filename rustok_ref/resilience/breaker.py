"""The recommended circuit breaker (review P1.2), for sync and async callables.

Why we wrote it: no maintained Python library has the semantics the review and its anchors
ask for. pybreaker has no native asyncio (`call(async_fn)` counts the coroutine as a success)
and holds one lock across every wrapped call, which serialises half-open trials and every
closed-state call with them; purgatory has asyncio but no success threshold, no trial limit
and no rate windows; aiobreaker is stale (reference: python-toolchain.md §6).

The model is resilience4j's, with Polly's manual isolation:

- states closed, open, half_open, plus forced_open (Polly's Isolate: rejects until closed)
  and disabled (admits everything, never trips);
- closed trips on `failure_threshold` consecutive failures (the review's knob), and/or, when
  configured, on a failure rate or slow-call rate over a count- or time-based sliding window
  once it holds `minimum_calls` calls;
- open becomes half_open `timeout_s` after it opened: lazily, on the next call, or by a timer
  when a `scheduler` is given;
- half_open admits at most `half_open_max_calls` trials *in flight*; a finished trial returns
  its permit, so trials come in waves and a limit below `success_threshold` cannot deadlock
  (the real Rust breaker never returns permits, so max 1 with threshold 2 stays half-open
  forever); it closes after `success_threshold` successful trials and reopens on a failed
  (or, with slow-call tripping, slow) trial; when every permit has been out for
  `half_open_max_wait_s` with no trial finishing, the trials are abandoned and the breaker
  reopens, so lost permits cannot wedge it, and a half-open breaker with no traffic simply
  admits the next caller;
- an exception counts as a failure when `is_failure` says so (by default any `Exception`
  except a client-side `RustokError`, status < 500: a NotFound is an answer, not an outage,
  and counts as a success, as resilience4j counts non-recorded exceptions); exceptions in
  `ignore_exceptions` and non-`Exception`s (cancellation) count as neither;
- a rejection raises `CircuitBreakerOpenError` whose `retry_after` is the whole seconds until
  the next trial may start (open: the rest of the timeout; half-open with every permit out:
  1, since a trial may finish any moment; forced_open: `timeout_s`, as nothing is scheduled);
- listeners hear every transition and outcome; every transition also becomes an
  OpenTelemetry span event, on the current span (or on a span of the injected tracer when no
  span is recording).

One `threading.Lock` guards the state; it is never held across the wrapped call or an
`await`, so the breaker is safe from threads and from asyncio tasks alike. Each transition
starts a new `_Episode`; a call remembers the episode that admitted it, so an outcome that
arrives after the state moved on is counted but changes nothing (a late failure does not
extend an open window, unlike the Rust code). Time comes from an injected clock.

The two hot paths are kept short, because the review sells the breaker as a cheap fail-fast:
a closed call takes the lock once (to record its outcome) and reads the clock only when slow
calls, a time window or listeners need it; an open rejection takes no lock at all. Both cost
well under half of pybreaker's (tests/benchmarks/test_breaker_bench.py).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, Protocol, TypeVar, overload

from opentelemetry import trace

from rustok_ref.errors import DEFAULT_RETRY_AFTER_SECONDS, CircuitBreakerOpenError, RustokError

__all__ = [
    "BreakerConfig",
    "BreakerListener",
    "BreakerMetrics",
    "CircuitBreaker",
    "CircuitState",
    "Permit",
    "Reason",
    "Scheduler",
    "StateChange",
    "counts_as_failure",
    "thread_timer",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

logger = logging.getLogger(__name__)

SPAN_EVENT: Final = "circuit_breaker.state_change"


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN
_FORCED_OPEN: Final = CircuitState.FORCED_OPEN
_DISABLED: Final = CircuitState.DISABLED

Reason = Literal[
    "failure_threshold",  # closed -> open: consecutive failures
    "failure_rate",  # closed -> open: failure rate over the window
    "slow_call_rate",  # closed -> open: slow-call rate over the window
    "timeout",  # open -> half_open
    "success_threshold",  # half_open -> closed
    "trial_failed",  # half_open -> open
    "trial_slow",  # half_open -> open, when slow calls can trip the breaker
    "half_open_stalled",  # half_open -> open: every permit out for half_open_max_wait_s
    "opened",  # open()
    "forced_open",  # force_open()
    "disabled",  # disable()
    "closed",  # close()
    "reset",  # reset()
    "remote",  # adopted from another process (shared state)
]


def counts_as_failure(error: BaseException) -> bool:
    """The default failure rule: any exception but a client-side domain error (HTTP < 500),
    which proves the dependency answered."""
    return not (isinstance(error, RustokError) and error.status < 500)


@dataclass(frozen=True, kw_only=True)
class BreakerConfig:
    """The knobs, named as the review names them; rates are percentages in (0, 100]."""

    failure_threshold: int | None = 5
    success_threshold: int = 2
    timeout_s: float = 60.0
    half_open_max_calls: int = 3
    half_open_max_wait_s: float | None = None  # None: timeout_s
    failure_rate_threshold: float | None = None
    slow_call_rate_threshold: float | None = None
    slow_call_duration_s: float | None = None
    window: Literal["count", "time"] = "count"
    window_size: int = 100  # calls (count window) or seconds (time window)
    minimum_calls: int = 100  # capped at window_size for a count window
    ignore_exceptions: tuple[type[BaseException], ...] = ()
    is_failure: Callable[[BaseException], bool] = counts_as_failure

    def __post_init__(self) -> None:
        positive_ints = {
            "success_threshold": self.success_threshold,
            "half_open_max_calls": self.half_open_max_calls,
            "window_size": self.window_size,
            "minimum_calls": self.minimum_calls,
        }
        if self.failure_threshold is not None:
            positive_ints["failure_threshold"] = self.failure_threshold
        for name, value in positive_ints.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name, seconds in (
            ("timeout_s", self.timeout_s),
            ("half_open_max_wait_s", self.half_open_max_wait_s),
            ("slow_call_duration_s", self.slow_call_duration_s),
        ):
            if seconds is not None and not seconds > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {seconds}")
        for name, rate in (
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
        ):
            if rate is not None and not 0 < rate <= 100:
                raise ValueError(f"{name} is a percentage in (0, 100], got {rate}")
        if self.slow_call_rate_threshold is not None and self.slow_call_duration_s is None:
            raise ValueError("slow_call_rate_threshold needs slow_call_duration_s")
        if self.window not in ("count", "time"):
            raise ValueError(f"window must be 'count' or 'time', got {self.window!r}")
        if (
            self.failure_threshold is None
            and self.failure_rate_threshold is None
            and self.slow_call_rate_threshold is None
        ):
            raise ValueError(
                "nothing can trip this breaker: set failure_threshold, "
                "failure_rate_threshold or slow_call_rate_threshold"
            )

    @property
    def uses_window(self) -> bool:
        return self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None

    @property
    def effective_minimum_calls(self) -> int:
        if self.window == "count":
            return min(self.minimum_calls, self.window_size)
        return self.minimum_calls

    @property
    def effective_half_open_max_wait_s(self) -> float:
        return self.timeout_s if self.half_open_max_wait_s is None else self.half_open_max_wait_s


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition: from `old` to `new` at clock time `at`, and why."""

    breaker: str
    old: CircuitState
    new: CircuitState
    reason: Reason
    at: float
    open_for_s: float | None  # how long an OPEN lasts before a trial may start


class BreakerListener:
    """Override the hooks you need (pybreaker's CircuitBreakerListener, resilience4j's events).

    Hooks run in the thread or task that caused the event, after the breaker's lock is
    released; an exception in a hook is logged and swallowed.
    """

    def state_change(self, breaker: CircuitBreaker, change: StateChange) -> None:
        """Every transition (resilience4j's onStateTransition, onForcedOpen, onDisabled...)."""

    def success(self, breaker: CircuitBreaker, duration_s: float, slow: bool) -> None:
        """A call succeeded (a client-side domain error counts as a success by default)."""

    def failure(
        self, breaker: CircuitBreaker, error: BaseException, duration_s: float, slow: bool
    ) -> None:
        """A call failed with an exception that counts as a failure."""

    def ignored(self, breaker: CircuitBreaker, error: BaseException) -> None:
        """A call raised an exception that counts as neither success nor failure."""

    def rejected(self, breaker: CircuitBreaker, error: CircuitBreakerOpenError) -> None:
        """A call was not permitted (resilience4j's onCallNotPermitted)."""


class Cancellable(Protocol):
    def cancel(self) -> None: ...


Scheduler = Callable[[float, Callable[[], None]], Cancellable]
"""Run a callback after a delay in seconds: `loop.call_later` (when the breaker is used from
that loop only), `thread_timer`, or a test's fake."""


def thread_timer(delay_s: float, callback: Callable[[], None]) -> Cancellable:
    """A `Scheduler` backed by a daemon `threading.Timer` (safe from any thread)."""
    timer = threading.Timer(delay_s, callback)
    timer.daemon = True
    timer.start()
    return timer


@dataclass(frozen=True)
class BreakerMetrics:
    """A consistent snapshot. Totals count since creation (or `reset()`); `window_*` and the
    rates describe the sliding window (rates are None below the minimum number of calls)."""

    name: str
    state: CircuitState
    successes: int
    failures: int
    ignored: int
    slow_calls: int
    not_permitted: int
    transitions: int
    consecutive_failures: int
    window_calls: int
    window_failures: int
    window_slow_calls: int
    failure_rate: float | None
    slow_call_rate: float | None
    trials_in_flight: int
    half_open_successes: int
    retry_after_s: float | None  # until the next trial may start, when open

    @property
    def calls(self) -> int:
        """Completed calls: successes + failures + ignored."""
        return self.successes + self.failures + self.ignored


class _Episode:
    """One stay in one state. `state` never changes: a transition makes a new episode."""

    __slots__ = ("deadline", "in_flight", "progress_at", "state", "successes", "timer")

    def __init__(self, state: CircuitState, now: float, deadline: float = math.inf) -> None:
        self.state = state
        self.deadline = deadline  # OPEN: when a trial may start
        self.in_flight = 0  # HALF_OPEN: trials admitted and not finished
        self.successes = 0  # HALF_OPEN: successful trials
        self.progress_at = now  # HALF_OPEN: entered, or a trial finished
        self.timer: Cancellable | None = None


class _CountWindow:
    """The last `size` outcomes in a ring (resilience4j's COUNT_BASED window)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ring: list[int] = []  # bit 0: failed, bit 1: slow
        self._next = 0
        self.calls = self.failures = self.slow = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        code = failed | (slow << 1)
        if len(self._ring) < self._size:
            self._ring.append(code)
            self.calls += 1
        else:
            old = self._ring[self._next]
            self.failures -= old & 1
            self.slow -= old >> 1
            self._ring[self._next] = code
            self._next = (self._next + 1) % self._size
        self.failures += failed
        self.slow += slow

    def evict(self, now: float) -> None:
        """Nothing expires from a count window."""

    def clear(self) -> None:
        self._ring.clear()
        self._next = 0
        self.calls = self.failures = self.slow = 0


class _TimeWindow:
    """Outcomes of the last `size` whole seconds, one bucket per second, subtracted on
    eviction (resilience4j's TIME_BASED window)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._buckets: deque[list[int]] = deque()  # [second, calls, failures, slow]
        self.calls = self.failures = self.slow = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        self.evict(now)
        second = math.floor(now)
        # A completion measured just before another thread's later one lands in the newest
        # bucket rather than reordering the deque.
        if not self._buckets or self._buckets[-1][0] < second:
            self._buckets.append([second, 0, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow

    def evict(self, now: float) -> None:
        horizon = math.floor(now) - self._size
        while self._buckets and self._buckets[0][0] <= horizon:
            _, calls, failures, slow = self._buckets.popleft()
            self.calls -= calls
            self.failures -= failures
            self.slow -= slow

    def clear(self) -> None:
        self._buckets.clear()
        self.calls = self.failures = self.slow = 0


def _rejection(detail: str, retry_after: int) -> CircuitBreakerOpenError:
    """`CircuitBreakerOpenError(detail, retry_after=retry_after)` at a third of the cost.

    The taxonomy's constructor validates its arguments, which is most of a rejection's
    cost; here they are known to be valid, so the instance gets the same attributes
    directly (tests/unit/test_breaker.py checks it equals one built the normal way).
    """
    error = CircuitBreakerOpenError.__new__(CircuitBreakerOpenError, detail)
    error.detail = detail
    error.extra = {}
    error.retry_after = retry_after
    return error


_SUCCESS: Final = 0
_FAILURE: Final = 1
_IGNORED: Final = 2


class Permit:
    """One admitted call, to complete exactly once: `complete(None)` for a success, or
    `complete(error)`; as a context manager (sync, also inside async code) it completes with
    the block's exception. `CircuitBreaker.acquire()` hands these out."""

    __slots__ = ("_breaker", "_done", "_episode", "_started", "_trial")

    def __init__(
        self, breaker: CircuitBreaker, episode: _Episode, trial: bool, started: float
    ) -> None:
        self._breaker = breaker
        self._episode = episode
        self._trial = trial
        self._started = started
        self._done = False

    @property
    def trial(self) -> bool:
        """Whether this call is a half-open trial."""
        return self._trial

    def complete(self, error: BaseException | None = None) -> None:
        if self._done:
            raise RuntimeError("this permit was already completed")
        self._done = True
        self._breaker._complete(self._episode, self._trial, self._started, error)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.complete(exc)


class CircuitBreaker:
    """`breaker.call(fn, *args)`, `await breaker.call_async(fn, *args)`, `@breaker`, or
    `with breaker.acquire(): ...`; see the module docstring for the semantics."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        listeners: tuple[BreakerListener, ...] = (),
        tracer: trace.Tracer | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.name = name
        self.config = config = config or BreakerConfig()
        self._clock = clock
        self._tracer = tracer
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._episode = _Episode(_CLOSED, clock())
        self._listeners = listeners
        self._window: _CountWindow | _TimeWindow | None = None
        if config.uses_window:
            window_class = _CountWindow if config.window == "count" else _TimeWindow
            self._window = window_class(config.window_size)
        self._slow_s = (
            math.inf if config.slow_call_duration_s is None else config.slow_call_duration_s
        )
        self._failure_threshold = config.failure_threshold or 0
        self._ignore = config.ignore_exceptions
        self._is_failure = config.is_failure
        self._consecutive = 0
        self._rejection_details = {
            state: f"circuit breaker {name!r} is {state.value}" for state in CircuitState
        }
        self._open_detail = self._rejection_details[_OPEN]
        self._zero_totals()
        self._update_timing()

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value})"

    def _zero_totals(self) -> None:
        self._successes = self._failures = self._ignored = self._slow_calls = 0
        self._rejected = self._transitions = 0
        self._open_rejections = itertools.count()
        self._open_rejections_read = 0

    def _rejections_total(self) -> int:
        """Rejections counted under the lock plus those of the lock-free path. Reading an
        itertools.count means advancing it, so earlier reads are subtracted; the caller
        holds the lock."""
        fast = next(self._open_rejections) - self._open_rejections_read
        self._open_rejections_read += 1
        return self._rejected + fast

    def _update_timing(self) -> None:
        # Whether a call needs the clock: only for slow calls, a time window, or listeners
        # (which receive durations). The closed-state hot path skips it otherwise.
        self._timed = (
            self.config.slow_call_duration_s is not None
            or (self._window is not None and self.config.window == "time")
            or bool(self._listeners)
        )

    # Listeners.

    def add_listener(self, listener: BreakerListener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)
            self._update_timing()

    def remove_listener(self, listener: BreakerListener) -> None:
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item is not listener)
            self._update_timing()

    # Calling through the breaker.

    def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run `fn(*args, **kwargs)` if the breaker admits it; raise its exception after
        recording it, or `CircuitBreakerOpenError` without running it."""
        episode = self._episode
        if episode.state is _CLOSED:
            trial = False
            started = self._clock() if self._timed else 0.0
        else:
            admission = self._admit()
            if isinstance(admission, CircuitBreakerOpenError):
                # Raised here, not in _admit: one frame less to unwind. The del breaks
                # the frame <-> traceback cycle the local would make, sparing the GC.
                try:
                    raise admission
                finally:
                    del admission
            episode, trial, started = admission
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            self._complete(episode, trial, started, error)
            raise
        self._complete(episode, trial, started, None)
        return result

    async def call_async(
        self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """`call` for a coroutine function; a cancelled call counts as neither outcome."""
        episode = self._episode
        if episode.state is _CLOSED:
            trial = False
            started = self._clock() if self._timed else 0.0
        else:
            admission = self._admit()
            if isinstance(admission, CircuitBreakerOpenError):
                # Raised here, not in _admit: one frame less to unwind. The del breaks
                # the frame <-> traceback cycle the local would make, sparing the GC.
                try:
                    raise admission
                finally:
                    del admission
            episode, trial, started = admission
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            self._complete(episode, trial, started, error)
            raise
        self._complete(episode, trial, started, None)
        return result

    @overload
    def __call__(
        self, fn: Callable[_P, Coroutine[Any, Any, _T]]
    ) -> Callable[_P, Coroutine[Any, Any, _T]]: ...

    @overload
    def __call__(self, fn: Callable[_P, _T]) -> Callable[_P, _T]: ...

    def __call__(self, fn: Callable[_P, Any]) -> Callable[_P, Any]:
        """Decorate a function or coroutine function so every call goes through the breaker."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                return await self.call_async(fn, *args, **kwargs)

            return guarded_async

        @functools.wraps(fn)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            return self.call(fn, *args, **kwargs)

        return guarded

    def acquire(self) -> Permit:
        """Admit one call (or raise `CircuitBreakerOpenError`); complete the permit when the
        call is over, or the breaker never learns the outcome."""
        episode = self._episode
        if episode.state is _CLOSED:
            return Permit(self, episode, False, self._clock())
        admission = self._admit()
        if isinstance(admission, CircuitBreakerOpenError):
            try:
                raise admission
            finally:
                del admission
        return Permit(self, *admission)

    # State.

    @property
    def state(self) -> CircuitState:
        """The stored state: an open breaker whose timeout passed stays OPEN here until the
        next call (or the timer) moves it, as in resilience4j and the Rust code."""
        return self._episode.state

    def metrics(self) -> BreakerMetrics:
        with self._lock:
            now = self._clock()
            episode = self._episode
            window = self._window
            calls = failures = slow = 0
            failure_rate = slow_rate = None
            if window is not None:
                window.evict(now)
                calls, failures, slow = window.calls, window.failures, window.slow
                if calls and calls >= self.config.effective_minimum_calls:
                    failure_rate = failures * 100 / calls
                    slow_rate = slow * 100 / calls
            half_open = episode.state is _HALF_OPEN
            return BreakerMetrics(
                name=self.name,
                state=episode.state,
                successes=self._successes,
                failures=self._failures,
                ignored=self._ignored,
                slow_calls=self._slow_calls,
                not_permitted=self._rejections_total(),
                transitions=self._transitions,
                consecutive_failures=self._consecutive,
                window_calls=calls,
                window_failures=failures,
                window_slow_calls=slow,
                failure_rate=failure_rate,
                slow_call_rate=slow_rate,
                trials_in_flight=episode.in_flight if half_open else 0,
                half_open_successes=episode.successes if half_open else 0,
                retry_after_s=max(0.0, episode.deadline - now) if episode.state is _OPEN else None,
            )

    # Manual control (resilience4j's transitionTo..., Polly's Isolate/Close).

    def open(self) -> None:
        """Open now; a trial may start after `timeout_s`."""
        self._manual(_OPEN, "opened")

    def force_open(self) -> None:
        """Reject every call until `close()` or `reset()` (Polly's Isolate)."""
        self._manual(_FORCED_OPEN, "forced_open")

    def disable(self) -> None:
        """Admit every call and never trip until `close()` or `reset()`."""
        self._manual(_DISABLED, "disabled")

    def close(self) -> None:
        self._manual(_CLOSED, "closed")

    def reset(self) -> None:
        """Close and zero every total (the Rust breaker's reset)."""
        with self._lock:
            self._zero_totals()
        self._manual(_CLOSED, "reset")

    def adopt(self, state: CircuitState, *, open_for_s: float | None = None) -> None:
        """Take a state another process published (see `resilience.shared`): an OPEN lasts
        `open_for_s`; half_open is never shared. A local forced_open or disabled ignores a
        remote OPEN, so an operator's choice is not overridden by a trip elsewhere."""
        changes: list[StateChange] = []
        with self._lock:
            now = self._clock()
            current = self._episode.state
            if state is _OPEN:
                if current in (_CLOSED, _HALF_OPEN):
                    self._transition(_OPEN, "remote", now, changes, open_for_s)
            elif state is not _HALF_OPEN and state is not current:
                self._transition(state, "remote", now, changes)
        self._emit(changes)

    def _manual(self, state: CircuitState, reason: Reason) -> None:
        changes: list[StateChange] = []
        with self._lock:
            if self._episode.state is not state:
                self._transition(state, reason, self._clock(), changes)
            elif state is _CLOSED:
                self._consecutive = 0
                if self._window is not None:
                    self._window.clear()
        self._emit(changes)

    # Internals. Everything that reads or writes shared state holds self._lock.

    def _admit(self) -> tuple[_Episode, bool, float] | CircuitBreakerOpenError:
        """Admission outside the closed fast path: may move open -> half_open, admit a
        trial, or reject (the caller raises the error it returns)."""
        episode = self._episode
        if episode.state is _OPEN and not self._listeners:
            # The common rejection, without the lock: reading the episode is atomic, and
            # so is `next` on an itertools.count (see _rejections_total).
            now = self._clock()
            if now < episode.deadline:
                next(self._open_rejections)
                return _rejection(self._open_detail, math.ceil(episode.deadline - now))
        changes: list[StateChange] = []
        with self._lock:
            now = self._clock()
            episode = self._episode
            state = episode.state
            if state is _OPEN:
                if now < episode.deadline:
                    retry_after = math.ceil(episode.deadline - now)
                else:
                    episode = self._transition(_HALF_OPEN, "timeout", now, changes)
                    state = _HALF_OPEN
            if state is _HALF_OPEN:
                if episode.in_flight < self.config.half_open_max_calls:
                    episode.in_flight += 1
                    retry_after = 0
                elif now - episode.progress_at >= self.config.effective_half_open_max_wait_s:
                    episode = self._transition(_OPEN, "half_open_stalled", now, changes)
                    state = _OPEN
                    retry_after = math.ceil(self.config.timeout_s)
                else:  # every permit is out: one may come back any moment
                    retry_after = DEFAULT_RETRY_AFTER_SECONDS
            elif state is _FORCED_OPEN:
                retry_after = math.ceil(self.config.timeout_s)
            elif state is not _OPEN:  # closed or disabled
                retry_after = 0
            if retry_after:
                self._rejected += 1
        if changes:
            self._emit(changes)
        if not retry_after:
            return episode, state is _HALF_OPEN, now
        error = _rejection(self._rejection_details[state], retry_after)
        for listener in self._listeners:
            self._notify(listener.rejected, self, error)
        return error

    def _complete(
        self, episode: _Episode, trial: bool, started: float, error: BaseException | None
    ) -> None:
        if self._timed:
            now = self._clock()
            duration = now - started
            slow = duration >= self._slow_s
        else:
            now = duration = 0.0
            slow = False
        if error is None:
            outcome = _SUCCESS
        elif isinstance(error, self._ignore) or not isinstance(error, Exception):
            outcome = _IGNORED
        elif self._is_failure(error):
            outcome = _FAILURE
        else:
            outcome = _SUCCESS
        changes: list[StateChange] | None = None
        with self._lock:
            if outcome == _SUCCESS:
                self._successes += 1
            elif outcome == _FAILURE:
                self._failures += 1
            else:
                self._ignored += 1
            if slow:
                self._slow_calls += 1
            current = episode is self._episode
            if trial:
                episode.in_flight -= 1
                if current:
                    episode.progress_at = self._clock()
            if current and outcome != _IGNORED:
                if episode.state is _CLOSED:
                    if outcome == _SUCCESS and self._window is None:
                        self._consecutive = 0  # the common case, kept short
                    else:
                        changes = self._record_closed(outcome == _FAILURE, slow, now)
                elif trial:
                    changes = self._record_trial(episode, outcome == _FAILURE, slow)
        if self._listeners:
            self._notify_outcome(outcome, error, duration, slow)
        if changes:
            self._emit(changes)

    def _record_closed(self, failed: bool, slow: bool, now: float) -> list[StateChange] | None:
        config = self.config
        reason: Reason | None = None
        if failed:
            self._consecutive += 1
            if self._failure_threshold and self._consecutive >= self._failure_threshold:
                reason = "failure_threshold"
        else:
            self._consecutive = 0
        window = self._window
        if window is not None:
            window.record(failed, slow, now)
            calls = window.calls
            if reason is None and calls >= config.effective_minimum_calls:
                failure_rate = config.failure_rate_threshold
                slow_rate = config.slow_call_rate_threshold
                if failure_rate is not None and window.failures * 100 >= failure_rate * calls:
                    reason = "failure_rate"
                elif slow_rate is not None and window.slow * 100 >= slow_rate * calls:
                    reason = "slow_call_rate"
        if reason is None:
            return None
        changes: list[StateChange] = []
        self._transition(_OPEN, reason, self._clock(), changes)
        return changes

    def _record_trial(self, episode: _Episode, failed: bool, slow: bool) -> list[StateChange]:
        now = episode.progress_at
        changes: list[StateChange] = []
        if failed:
            self._transition(_OPEN, "trial_failed", now, changes)
        elif slow and self.config.slow_call_rate_threshold is not None:
            self._transition(_OPEN, "trial_slow", now, changes)
        else:
            episode.successes += 1
            if episode.successes >= self.config.success_threshold:
                self._transition(_CLOSED, "success_threshold", now, changes)
        return changes

    def _transition(
        self,
        new: CircuitState,
        reason: Reason,
        now: float,
        changes: list[StateChange],
        open_for_s: float | None = None,
    ) -> _Episode:
        old = self._episode
        if old.timer is not None:
            old.timer.cancel()
        open_for = None
        if new is _OPEN:
            open_for = self.config.timeout_s if open_for_s is None else open_for_s
            episode = _Episode(new, now, now + open_for)
            if self._scheduler is not None:
                episode.timer = self._scheduler(
                    open_for, functools.partial(self._timer_fired, episode)
                )
        else:
            episode = _Episode(new, now)
        if new is _CLOSED:
            self._consecutive = 0
            if self._window is not None:
                self._window.clear()
        self._episode = episode
        self._transitions += 1
        changes.append(StateChange(self.name, old.state, new, reason, now, open_for))
        return episode

    def _timer_fired(self, episode: _Episode) -> None:
        changes: list[StateChange] = []
        with self._lock:
            if self._episode is episode:
                now = self._clock()
                if now >= episode.deadline:
                    self._transition(_HALF_OPEN, "timeout", now, changes)
                elif self._scheduler is not None:  # the clock lags the timer: wait the rest
                    episode.timer = self._scheduler(
                        episode.deadline - now, functools.partial(self._timer_fired, episode)
                    )
        self._emit(changes)

    def _emit(self, changes: list[StateChange]) -> None:
        for change in changes:
            level = logging.WARNING if change.new in (_OPEN, _FORCED_OPEN) else logging.INFO
            logger.log(
                level,
                "circuit breaker %r: %s -> %s (%s)",
                self.name,
                change.old.value,
                change.new.value,
                change.reason,
            )
            self._span_event(change)
            for listener in self._listeners:
                self._notify(listener.state_change, self, change)

    def _span_event(self, change: StateChange) -> None:
        attributes = {
            "circuit_breaker.name": self.name,
            "circuit_breaker.from": change.old.value,
            "circuit_breaker.to": change.new.value,
            "circuit_breaker.reason": change.reason,
        }
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(SPAN_EVENT, attributes)
        elif self._tracer is not None:
            with self._tracer.start_as_current_span(f"circuit_breaker {self.name}") as own:
                own.add_event(SPAN_EVENT, attributes)

    def _notify_outcome(
        self, outcome: int, error: BaseException | None, duration: float, slow: bool
    ) -> None:
        for listener in self._listeners:
            if outcome == _SUCCESS:
                self._notify(listener.success, self, duration, slow)
            elif outcome == _FAILURE:
                assert error is not None
                self._notify(listener.failure, self, error, duration, slow)
            else:
                assert error is not None
                self._notify(listener.ignored, self, error)

    @staticmethod
    def _notify(hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            logger.exception("circuit breaker listener %r failed", hook)
