"""The recommended circuit breaker without I/O: transitions, trial limits, windows, exception
filtering, manual control, listeners, metrics, span events, timers and concurrency. Time
comes from a fake clock, so nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rustok_ref.errors import (
    CircuitBreakerOpenError,
    InternalError,
    NotFoundError,
    ValidationError,
)
from rustok_ref.resilience import (
    BreakerConfig,
    BreakerListener,
    CircuitBreaker,
    CircuitState,
    SketchedCircuitBreaker,
    StateChange,
    thread_timer,
)
from rustok_ref.resilience.breaker import SPAN_EVENT, _rejection
from rustok_ref.telemetry import in_memory_tracing


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OutageError(ConnectionError):
    """A dependency failure."""


def ok() -> str:
    return "ok"


def boom() -> str:
    raise OutageError("down")


def make(clock: FakeClock, **config: object) -> CircuitBreaker:
    return CircuitBreaker("dep", BreakerConfig(**config), clock=clock)  # type: ignore[arg-type]


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(OutageError):
            breaker.call(boom)


def rejected(breaker: CircuitBreaker) -> CircuitBreakerOpenError:
    with pytest.raises(CircuitBreakerOpenError) as caught:
        breaker.call(ok)
    return caught.value


LIVENESS_S = 10.0  # far above the 10 ms timer below


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# Closed and open.


def test_a_closed_breaker_passes_calls_and_results_through(clock: FakeClock) -> None:
    breaker = make(clock)
    assert breaker.call(lambda x, *, y: x + y, 1, y=2) == 3
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().successes == 1
    assert repr(breaker) == "CircuitBreaker('dep', state=closed)"


def test_it_opens_on_the_threshold_th_consecutive_failure_not_before(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=3)
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_a_success_resets_the_consecutive_failures(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=3)
    for _ in range(5):
        fail(breaker, 2)
        breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().consecutive_failures == 0
    assert breaker.metrics().failures == 10


def test_an_open_breaker_rejects_without_calling_and_says_when_to_retry(
    clock: FakeClock,
) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=30)
    fail(breaker)
    calls: list[int] = []
    clock.advance(10.5)
    with pytest.raises(CircuitBreakerOpenError) as caught:
        breaker.call(calls.append, 1)
    assert calls == []
    assert caught.value.retry_after == 20  # 19.5 s to the next trial, in whole seconds
    assert caught.value.headers() == {"Retry-After": "20"}
    assert caught.value.status == 503
    assert "'dep' is open" in caught.value.detail
    assert breaker.metrics().not_permitted == 1
    assert breaker.metrics().retry_after_s == pytest.approx(19.5)


def test_the_fast_rejection_equals_one_built_by_the_taxonomy() -> None:
    fast = _rejection("circuit breaker 'x' is open", 7)
    normal = CircuitBreakerOpenError("circuit breaker 'x' is open", retry_after=7)
    assert type(fast) is type(normal)
    assert vars(fast) == vars(normal)
    assert fast.args == normal.args
    assert fast.to_problem() == normal.to_problem()
    assert fast.headers() == normal.headers()


def test_rejections_are_counted_on_both_paths(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=10)
    fail(breaker)
    for _ in range(3):
        rejected(breaker)  # lock-free path: no listeners
    assert breaker.metrics().not_permitted == 3
    breaker.add_listener(BreakerListener())
    rejected(breaker)  # locked path
    assert breaker.metrics().not_permitted == 4
    assert breaker.metrics().not_permitted == 4  # reading does not count


# Half-open.


def test_open_turns_half_open_lazily_on_the_first_call_after_the_timeout(
    clock: FakeClock,
) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=30)
    fail(breaker)
    clock.advance(30)
    assert breaker.state is CircuitState.OPEN  # nothing moved it yet
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.HALF_OPEN


def test_half_open_admits_at_most_max_calls_in_flight(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=5, half_open_max_calls=2)
    fail(breaker)
    clock.advance(5)
    first, second = breaker.acquire(), breaker.acquire()
    assert first.trial
    assert second.trial
    error = rejected(breaker)
    assert error.retry_after == 1
    assert "half_open" in error.detail
    assert breaker.metrics().trials_in_flight == 2


def test_it_closes_after_success_threshold_successful_trials(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=5, success_threshold=3)
    fail(breaker)
    clock.advance(5)
    for expected in (1, 2):
        breaker.call(ok)
        assert breaker.state is CircuitState.HALF_OPEN
        assert breaker.metrics().half_open_successes == expected
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED


def test_a_failed_trial_reopens_for_a_fresh_timeout(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=5, success_threshold=2)
    fail(breaker)
    clock.advance(5)
    breaker.call(ok)
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    assert rejected(breaker).retry_after == 5


def test_a_trial_limit_below_the_success_threshold_does_not_deadlock(clock: FakeClock) -> None:
    # The Rust breaker's golden case: half_open_max(1) < success_threshold(2) stays half-open
    # forever there, because a finished trial never returns its permit.
    breaker = make(clock, failure_threshold=1, timeout_s=5, half_open_max_calls=1)
    fail(breaker)
    clock.advance(5)
    breaker.call(ok)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED


def test_a_half_open_breaker_with_no_traffic_admits_the_next_caller(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=5)
    fail(breaker)
    clock.advance(5)
    breaker.call(ok)
    clock.advance(86_400)
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_lost_trial_permits_cannot_wedge_it(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=1, timeout_s=5, half_open_max_calls=1, half_open_max_wait_s=20
    )
    fail(breaker)
    clock.advance(5)
    lost = breaker.acquire()  # a caller that never comes back
    clock.advance(19)
    assert rejected(breaker).retry_after == 1
    clock.advance(1)
    assert rejected(breaker).retry_after == 5  # stalled: reopened for a fresh timeout
    assert breaker.state is CircuitState.OPEN
    clock.advance(5)
    assert breaker.call(ok) == "ok"  # a new wave of trials
    lost.complete(OutageError())  # the abandoned trial's late failure changes nothing
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.metrics().failures == 2


def test_the_stall_clock_restarts_whenever_a_trial_finishes(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=1,
        timeout_s=5,
        half_open_max_calls=1,
        success_threshold=3,
        half_open_max_wait_s=20,
    )
    fail(breaker)
    clock.advance(5)
    first = breaker.acquire()  # half-open from here
    clock.advance(15)
    first.complete()  # a trial finished 15 s into half-open
    breaker.acquire()  # and the next one never comes back
    clock.advance(19)
    assert rejected(breaker).retry_after == 1  # 19 s since the last finished trial
    assert breaker.state is CircuitState.HALF_OPEN
    clock.advance(1)
    rejected(breaker)
    assert breaker.state is CircuitState.OPEN


def test_an_outcome_from_an_earlier_state_changes_nothing(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=5, success_threshold=1)
    slow_caller = breaker.acquire()  # admitted while closed
    fail(breaker)
    clock.advance(4)
    slow_caller.complete(OutageError())  # a late failure does not extend the open window
    clock.advance(1)
    trial = breaker.acquire()
    assert trial.trial
    slow_success = breaker.acquire()
    trial.complete()
    assert breaker.state is CircuitState.CLOSED
    slow_success.complete()
    assert breaker.metrics().successes == 2


# Which exceptions count.


@pytest.mark.parametrize(
    ("error", "counted_as"),
    [
        (OutageError("down"), "failures"),
        (TimeoutError(), "failures"),
        (InternalError("bug"), "failures"),
        (NotFoundError("no such key"), "successes"),
        (ValidationError("bad"), "successes"),
        (asyncio.CancelledError(), "ignored"),
        (KeyboardInterrupt(), "ignored"),
    ],
)
def test_how_each_exception_counts_by_default(
    clock: FakeClock, error: BaseException, counted_as: str
) -> None:
    breaker = make(clock, failure_threshold=1)

    def raise_it() -> None:
        raise error

    with pytest.raises(type(error)):
        breaker.call(raise_it)
    metrics = breaker.metrics()
    counts = {"failures": metrics.failures, "successes": metrics.successes}
    counts["ignored"] = metrics.ignored
    assert counts == {name: int(name == counted_as) for name in counts}
    assert breaker.state is (CircuitState.OPEN if counted_as == "failures" else CircuitState.CLOSED)


def test_a_not_found_resets_the_consecutive_failures(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)
    fail(breaker)

    def missing() -> None:
        raise NotFoundError("no such tenant")

    with pytest.raises(NotFoundError):
        breaker.call(missing)
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED


def test_ignored_exceptions_and_a_custom_failure_rule(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=1,
        ignore_exceptions=(KeyError,),
        is_failure=lambda error: isinstance(error, ConnectionError),
    )

    def lookup() -> None:
        raise KeyError("k")

    def broken() -> None:
        raise ValueError("not a dependency fault")

    with pytest.raises(KeyError):
        breaker.call(lookup)
    with pytest.raises(ValueError, match="dependency"):
        breaker.call(broken)
    assert breaker.state is CircuitState.CLOSED
    metrics = breaker.metrics()
    assert (metrics.ignored, metrics.successes, metrics.failures) == (1, 1, 0)
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_a_cancelled_trial_returns_its_permit(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=5, half_open_max_calls=1)
    fail(breaker)
    clock.advance(5)
    breaker.acquire().complete(asyncio.CancelledError())
    assert breaker.metrics().trials_in_flight == 0
    assert breaker.call(ok) == "ok"


# Sliding windows.


def test_the_failure_rate_trips_only_after_the_minimum_number_of_calls(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=None, failure_rate_threshold=50, window_size=10, minimum_calls=4
    )
    fail(breaker, 3)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().failure_rate is None
    breaker.call(ok)
    assert breaker.state is CircuitState.OPEN  # 3 of 4 = 75 %


def test_the_count_window_forgets_the_oldest_outcomes(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=None, failure_rate_threshold=50, window_size=4, minimum_calls=4
    )
    fail(breaker)
    for _ in range(3):
        breaker.call(ok)
    assert breaker.metrics().failure_rate == 25
    breaker.call(ok)  # pushes the failure out
    metrics = breaker.metrics()
    assert (metrics.window_calls, metrics.window_failures, metrics.failure_rate) == (4, 0, 0)
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN  # 2 of the last 4


def test_the_time_window_forgets_outcomes_older_than_its_size(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=None,
        failure_rate_threshold=50,
        window="time",
        window_size=10,
        minimum_calls=3,
    )
    fail(breaker, 2)
    clock.advance(10)
    breaker.call(ok)
    breaker.call(ok)
    metrics = breaker.metrics()
    assert (metrics.window_calls, metrics.window_failures) == (2, 0)
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED  # 1 of 3 in the window, not 3 of 5


def test_the_slow_call_rate_trips_even_when_every_call_succeeds(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=None,
        slow_call_rate_threshold=50,
        slow_call_duration_s=1.0,
        window_size=4,
        minimum_calls=2,
    )

    def slow() -> str:
        clock.advance(1.5)
        return "late"

    breaker.call(ok)
    breaker.call(slow)
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics().slow_calls == 1


def test_a_slow_trial_reopens_when_slow_calls_can_trip(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=1,
        slow_call_rate_threshold=100,
        slow_call_duration_s=1.0,
        timeout_s=5,
        window_size=10,
    )
    fail(breaker)
    clock.advance(5)
    trial = breaker.acquire()
    clock.advance(2)
    trial.complete()
    assert breaker.state is CircuitState.OPEN


def test_slow_calls_alone_never_trip_a_consecutive_failure_breaker(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, slow_call_duration_s=1.0)
    permit = breaker.acquire()
    clock.advance(5)
    permit.complete()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics().slow_calls == 1


# Manual control.


def test_forced_open_rejects_until_closed_and_never_turns_half_open(clock: FakeClock) -> None:
    breaker = make(clock, timeout_s=5)
    breaker.force_open()
    clock.advance(3600)
    assert rejected(breaker).retry_after == 5
    assert breaker.state is CircuitState.FORCED_OPEN
    breaker.close()
    assert breaker.call(ok) == "ok"


def test_disabled_admits_everything_and_never_trips(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    breaker.disable()
    fail(breaker, 5)
    assert breaker.state is CircuitState.DISABLED
    assert breaker.call(ok) == "ok"
    assert breaker.metrics().failures == 5


def test_open_reset_and_close(clock: FakeClock) -> None:
    breaker = make(clock, timeout_s=5)
    breaker.open()
    assert rejected(breaker).retry_after == 5
    breaker.reset()
    metrics = breaker.metrics()
    assert metrics.state is CircuitState.CLOSED
    assert (metrics.not_permitted, metrics.successes, metrics.transitions) == (0, 0, 1)
    breaker.close()  # already closed: no transition
    assert breaker.metrics().transitions == 1


def test_adopting_a_remote_state(clock: FakeClock) -> None:
    breaker = make(clock, timeout_s=60)
    breaker.adopt(CircuitState.OPEN, open_for_s=12)
    assert rejected(breaker).retry_after == 12
    breaker.adopt(CircuitState.HALF_OPEN)  # never shared: ignored
    assert breaker.state is CircuitState.OPEN
    breaker.adopt(CircuitState.FORCED_OPEN)
    breaker.adopt(CircuitState.OPEN, open_for_s=1)  # an operator's choice wins
    assert breaker.state is CircuitState.FORCED_OPEN
    breaker.adopt(CircuitState.CLOSED)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    "config",
    [
        {"failure_threshold": 0},
        {"success_threshold": 0},
        {"half_open_max_calls": 0},
        {"timeout_s": 0},
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 101},
        {"slow_call_rate_threshold": 50},  # no slow_call_duration_s
        {"failure_threshold": None},  # nothing can trip it
        {"window": "sliding"},
    ],
)
def test_invalid_configurations_are_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        BreakerConfig(**config)  # type: ignore[arg-type]


# Listeners, spans, timers.


@dataclass
class Recorder(BreakerListener):
    events: list[tuple[str, object]] = field(default_factory=list)

    def state_change(self, breaker: CircuitBreaker, change: StateChange) -> None:
        self.events.append(("state", (change.old.value, change.new.value, change.reason)))

    def success(self, breaker: CircuitBreaker, duration_s: float, slow: bool) -> None:
        self.events.append(("success", slow))

    def failure(
        self, breaker: CircuitBreaker, error: BaseException, duration_s: float, slow: bool
    ) -> None:
        self.events.append(("failure", type(error).__name__))

    def ignored(self, breaker: CircuitBreaker, error: BaseException) -> None:
        self.events.append(("ignored", type(error).__name__))

    def rejected(self, breaker: CircuitBreaker, error: CircuitBreakerOpenError) -> None:
        self.events.append(("rejected", error.retry_after))


def test_listeners_hear_every_transition_and_outcome(clock: FakeClock) -> None:
    recorder = Recorder()
    breaker = CircuitBreaker(
        "dep",
        BreakerConfig(failure_threshold=1, success_threshold=1, timeout_s=5),
        clock=clock,
        listeners=(recorder,),
    )
    fail(breaker)
    rejected(breaker)
    clock.advance(5)
    breaker.call(ok)
    breaker.acquire().complete(asyncio.CancelledError())
    assert recorder.events == [
        ("failure", "OutageError"),
        ("state", ("closed", "open", "failure_threshold")),
        ("rejected", 5),
        ("state", ("open", "half_open", "timeout")),
        ("success", False),
        ("state", ("half_open", "closed", "success_threshold")),
        ("ignored", "CancelledError"),
    ]
    breaker.remove_listener(recorder)
    fail(breaker)
    assert len(recorder.events) == 7


def test_a_failing_listener_does_not_break_calls(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(BreakerListener):
        def success(self, breaker: CircuitBreaker, duration_s: float, slow: bool) -> None:
            raise RuntimeError("listener bug")

    breaker = CircuitBreaker("dep", clock=clock, listeners=(Broken(),))
    assert breaker.call(ok) == "ok"
    assert "listener" in caplog.text


def test_transitions_become_span_events_on_the_current_span(clock: FakeClock) -> None:
    provider, exporter = in_memory_tracing()
    tracer = provider.get_tracer("test")
    breaker = make(clock, failure_threshold=1)
    with tracer.start_as_current_span("request"):
        fail(breaker)
    (span,) = exporter.get_finished_spans()
    (event,) = span.events
    assert event.name == SPAN_EVENT
    assert dict(event.attributes or {}) == {
        "circuit_breaker.name": "dep",
        "circuit_breaker.from": "closed",
        "circuit_breaker.to": "open",
        "circuit_breaker.reason": "failure_threshold",
    }


def test_without_a_current_span_the_injected_tracer_records_the_transition(
    clock: FakeClock,
) -> None:
    provider: TracerProvider
    exporter: InMemorySpanExporter
    provider, exporter = in_memory_tracing()
    breaker = CircuitBreaker(
        "dep", BreakerConfig(timeout_s=5), clock=clock, tracer=provider.get_tracer("breaker")
    )
    breaker.force_open()
    (span,) = exporter.get_finished_spans()
    assert span.name == "circuit_breaker dep"
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["circuit_breaker.to"] == "forced_open"


@dataclass
class FakeScheduler:
    clock: FakeClock
    timers: list[tuple[float, Callable[[], None], FakeTimer]] = field(default_factory=list)

    def __call__(self, delay_s: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer()
        self.timers.append((self.clock() + delay_s, callback, timer))
        return timer

    def run_due(self) -> None:
        due = [t for t in self.timers if t[0] <= self.clock() and not t[2].cancelled]
        self.timers = [t for t in self.timers if t not in due]
        for _, callback, _ in due:
            callback()


@dataclass
class FakeTimer:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


def test_a_timer_moves_open_to_half_open_without_a_call(clock: FakeClock) -> None:
    scheduler = FakeScheduler(clock)
    breaker = CircuitBreaker(
        "dep", BreakerConfig(failure_threshold=1, timeout_s=5), clock=clock, scheduler=scheduler
    )
    fail(breaker)
    clock.advance(4)
    scheduler.run_due()
    assert breaker.state is CircuitState.OPEN
    clock.advance(1)
    scheduler.run_due()
    assert breaker.state is CircuitState.HALF_OPEN


def test_a_timer_is_cancelled_when_the_state_moves_on(clock: FakeClock) -> None:
    scheduler = FakeScheduler(clock)
    breaker = CircuitBreaker("dep", clock=clock, scheduler=scheduler)
    breaker.open()
    breaker.close()
    assert [timer.cancelled for _, _, timer in scheduler.timers] == [True]


def test_a_timer_that_fires_early_waits_for_the_rest(clock: FakeClock) -> None:
    scheduler = FakeScheduler(clock)
    breaker = CircuitBreaker(
        "dep", BreakerConfig(failure_threshold=1, timeout_s=5), clock=clock, scheduler=scheduler
    )
    fail(breaker)
    clock.advance(2)
    ((_, early, _),) = scheduler.timers
    scheduler.timers.clear()
    early()  # the timer's clock ran ahead of the breaker's
    assert breaker.state is CircuitState.OPEN
    ((due, _, _),) = scheduler.timers
    assert due == clock() + 3


def test_thread_timer_moves_a_real_breaker_to_half_open() -> None:
    breaker = CircuitBreaker(
        "dep", BreakerConfig(failure_threshold=1, timeout_s=0.01), scheduler=thread_timer
    )
    half_open = threading.Event()

    class Waiter(BreakerListener):
        def state_change(self, breaker: CircuitBreaker, change: StateChange) -> None:
            if change.new is CircuitState.HALF_OPEN:
                half_open.set()

    breaker.add_listener(Waiter())
    fail(breaker)
    assert half_open.wait(LIVENESS_S), "the timer never fired"
    assert breaker.state is CircuitState.HALF_OPEN


def test_a_cancelled_thread_timer_never_fires() -> None:
    fired = threading.Event()
    timer = thread_timer(3600, fired.set)
    assert isinstance(timer, threading.Timer)
    assert timer.daemon
    timer.cancel()
    timer.join(LIVENESS_S)
    assert not timer.is_alive()
    assert not fired.is_set()


# Call forms.


def test_the_decorator_guards_sync_and_async_functions(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)

    @breaker
    def double(x: int) -> int:
        return 2 * x

    @breaker
    async def triple(x: int) -> int:
        return 3 * x

    assert double(2) == 4
    assert asyncio.run(triple(2)) == 6
    assert double.__name__ == "double"
    assert breaker.metrics().successes == 2


def test_a_permit_is_a_context_manager_and_completes_once(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    with breaker.acquire():
        pass
    with pytest.raises(OutageError), breaker.acquire():
        raise OutageError
    assert breaker.state is CircuitState.OPEN
    clock.advance(60)
    permit = breaker.acquire()
    permit.complete()
    with pytest.raises(RuntimeError, match="already completed"):
        permit.complete()


async def test_call_async_records_failures_of_coroutines(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)

    async def down() -> None:
        raise OutageError

    with pytest.raises(OutageError):
        await breaker.call_async(down)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call_async(down)


# Concurrency.


def test_counts_add_up_under_many_threads(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=None, failure_rate_threshold=100, window_size=50)
    threads, per_thread = 8, 2000
    start = threading.Barrier(threads)

    def worker(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            with contextlib.suppress(OutageError):
                breaker.call(boom if (i + index) % 3 == 0 else ok)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    metrics = breaker.metrics()
    assert metrics.calls == threads * per_thread
    assert metrics.failures == sum(
        (i + index) % 3 == 0 for index in range(threads) for i in range(per_thread)
    )
    assert metrics.window_calls == 50
    assert breaker.state is CircuitState.CLOSED


def test_concurrent_threads_in_half_open_never_exceed_the_trial_limit(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=1, timeout_s=5, half_open_max_calls=3, success_threshold=10**9
    )
    fail(breaker)
    clock.advance(5)
    in_flight = peak = 0
    guard = threading.Lock()

    def trial() -> None:
        nonlocal in_flight, peak
        with guard:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.0001)  # let other threads in while this trial is out
        with guard:
            in_flight -= 1

    def worker() -> None:
        for _ in range(500):
            with contextlib.suppress(CircuitBreakerOpenError):
                breaker.call(trial)

    pool = [threading.Thread(target=worker) for _ in range(8)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert 1 <= peak <= 3
    metrics = breaker.metrics()
    assert metrics.successes + metrics.not_permitted == 8 * 500
    assert metrics.trials_in_flight == 0


async def test_concurrent_tasks_in_half_open_never_exceed_the_trial_limit(
    clock: FakeClock,
) -> None:
    breaker = make(clock, failure_threshold=1, timeout_s=5, half_open_max_calls=2)
    fail(breaker)
    clock.advance(5)
    in_flight = peak = 0
    release = asyncio.Event()

    async def trial() -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1

    tasks = [asyncio.create_task(breaker.call_async(trial)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert peak == 2
    assert sum(isinstance(r, CircuitBreakerOpenError) for r in results) == 48
    assert breaker.state is CircuitState.CLOSED


# The review's sketch, sync: the same defects as under the real Redis faults.


def test_the_sketch_counts_failures_cumulatively_and_admits_every_trial(
    clock: FakeClock,
) -> None:
    sketch = SketchedCircuitBreaker(
        "dep", failure_threshold=2, success_threshold=2, timeout_s=5, clock=clock
    )
    for _ in range(2):
        assert sketch.call(ok) == "ok"
        with pytest.raises(OutageError):
            sketch.call(boom)
    assert sketch.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError):
        sketch.call(ok)
    clock.advance(5)
    assert sketch.call(ok) == "ok"  # success_count was 2 already: closes at once
    assert sketch.metrics().state is CircuitState.CLOSED
