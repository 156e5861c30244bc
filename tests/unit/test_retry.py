"""Retries of idempotent calls, composed outside the breaker. Sleeps are injected: they
record the delay and move the fake clock, so nothing waits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustok_ref.errors import CircuitBreakerOpenError, NotFoundError
from rustok_ref.resilience import BreakerConfig, CircuitBreaker, CircuitState, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)


class Flaky:
    """Fails `failures` times with `error`, then returns "ok"; counts its calls."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("reset")
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_transient_failure_is_retried_with_jittered_exponential_delays(
    clock: FakeClock,
) -> None:
    policy = RetryPolicy(attempts=4, base_delay_s=0.1, max_delay_s=0.3)
    flaky = Flaky(3)
    assert policy.retrying(sleep=clock.sleep)(flaky) == "ok"
    assert flaky.calls == 4
    caps = [0.1, 0.2, 0.3]  # base * 2 ** (n - 1), capped at max_delay_s
    assert len(clock.slept) == 3
    assert all(0 <= slept <= cap for slept, cap in zip(clock.slept, caps, strict=True))


def test_it_gives_up_after_the_last_attempt_with_the_last_error(clock: FakeClock) -> None:
    flaky = Flaky(10)
    with pytest.raises(ConnectionError, match="reset"):
        RetryPolicy(attempts=3).retrying(sleep=clock.sleep)(flaky)
    assert flaky.calls == 3


def test_errors_that_are_not_transient_are_not_retried(clock: FakeClock) -> None:
    flaky = Flaky(1, NotFoundError("no such key"))
    with pytest.raises(NotFoundError):
        RetryPolicy().retrying(sleep=clock.sleep)(flaky)
    assert flaky.calls == 1
    assert clock.slept == []


def test_a_breaker_rejection_is_retried_after_exactly_its_retry_after(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "dep", BreakerConfig(failure_threshold=2, timeout_s=2, success_threshold=1), clock=clock
    )
    flaky = Flaky(2)
    policy = RetryPolicy(attempts=5, base_delay_s=0.01, max_delay_s=3)
    assert policy.retrying(sleep=clock.sleep)(breaker.call, flaky) == "ok"
    # two failures trip it; the rejection says 2 s; the trial after it succeeds
    assert flaky.calls == 3
    assert clock.slept[-1] == 2.0
    assert breaker.state is CircuitState.CLOSED


def test_a_rejection_longer_than_the_policy_allows_gives_up_at_once(clock: FakeClock) -> None:
    breaker = CircuitBreaker("dep", BreakerConfig(failure_threshold=2, timeout_s=60), clock=clock)
    flaky = Flaky(100)
    policy = RetryPolicy(attempts=10, base_delay_s=0.01, max_delay_s=5)
    with pytest.raises(CircuitBreakerOpenError) as caught:
        policy.retrying(sleep=clock.sleep)(breaker.call, flaky)
    assert caught.value.retry_after == 60
    assert flaky.calls == 2  # every attempt went through the breaker until it opened
    assert len(clock.slept) == 2


async def test_async_retries_compose_with_call_async(clock: FakeClock) -> None:
    breaker = CircuitBreaker("dep", clock=clock)
    flaky = Flaky(2, TimeoutError())

    async def fetch() -> str:
        return flaky()

    policy = RetryPolicy(attempts=3, base_delay_s=0.05, max_delay_s=1)
    result = await policy.async_retrying(sleep=clock.sleep_async)(breaker.call_async, fetch)
    assert result == "ok"
    assert breaker.metrics().failures == 2


@given(
    attempts=st.integers(-3, 10),
    base=st.floats(-1, 10, allow_nan=False),
    ceiling=st.floats(-1, 10, allow_nan=False),
)
def test_the_policy_accepts_exactly_the_sensible_settings(
    attempts: int, base: float, ceiling: float
) -> None:
    sensible = attempts >= 1 and 0 < base <= ceiling
    try:
        RetryPolicy(attempts=attempts, base_delay_s=base, max_delay_s=ceiling)
    except ValueError:
        assert not sensible
    else:
        assert sensible
