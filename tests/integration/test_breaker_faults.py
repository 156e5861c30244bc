"""Both breakers in front of the real Redis, with outages from the fault proxy.

Fail-fast is proven by the proxy's counters: while a breaker is open, no connection is
attempted and no byte moves. The breakers' clocks are fake (the open timeout passes when the
test says so); only the slow-call and hanging-Redis tests use real time, as lower bounds
(a 200 ms latency is always slower than a 50 ms threshold) and a client timeout.

The `test_sketch_defect_*` tests assert the review sketch's defects as behaviour, each
beside what the recommended breaker does under the same fault pattern.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from support import FakeClock

from rustok_ref.errors import CircuitBreakerOpenError
from rustok_ref.lab import infra
from rustok_ref.lab.faults import FaultProxy, ProxyStats
from rustok_ref.resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    SketchedCircuitBreaker,
)

pytestmark = pytest.mark.integration

LIVENESS_S = 10.0  # far above every latency and timeout configured here (at most 0.2 s)
TIMEOUT_S = 30.0  # the breakers' open timeout, on their fake clocks


def client_via(proxy: FaultProxy, socket_timeout: float = LIVENESS_S) -> aioredis.Redis:
    """A client through the proxy, without retries: each command is one attempt."""
    return aioredis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        socket_timeout=socket_timeout,
        socket_connect_timeout=LIVENESS_S,
        retry=Retry(NoBackoff(), 0),
    )


@pytest.fixture
async def client(redis_proxy: FaultProxy) -> AsyncIterator[aioredis.Redis]:
    opened = client_via(redis_proxy)
    yield opened
    await opened.aclose()


@pytest.fixture
def key(run_ns: infra.RunNamespace) -> str:
    return f"{run_ns.redis_prefix}breaker-faults:{uuid.uuid4().hex}"


class Reaching:
    """A GET that counts the calls that got past the breaker to the client."""

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.calls = 0

    async def __call__(self) -> bytes | None:
        self.calls += 1
        value: bytes | None = await self.client.get(self.key)
        return value


def recommended(clock: FakeClock, **config: object) -> CircuitBreaker:
    defaults: dict[str, object] = {
        "failure_threshold": 3,
        "success_threshold": 2,
        "half_open_max_calls": 2,
        "timeout_s": TIMEOUT_S,
    }
    return CircuitBreaker(
        "redis",
        BreakerConfig(**(defaults | config)),  # type: ignore[arg-type]
        clock=clock,
    )


def sketched(clock: FakeClock, **config: float) -> SketchedCircuitBreaker:
    defaults = {"failure_threshold": 3, "success_threshold": 2, "half_open_max_calls": 2}
    return SketchedCircuitBreaker("redis", timeout_s=TIMEOUT_S, clock=clock, **(defaults | config))  # type: ignore[arg-type]


Guarded = Callable[[Callable[[], Awaitable[bytes | None]]], Awaitable[bytes | None]]


async def fail_while_down(call: Guarded, get: Reaching, proxy: FaultProxy, times: int) -> None:
    proxy.disable()
    for _ in range(times):
        with pytest.raises(RedisConnectionError):
            await call(get)
    proxy.enable()


def counters(stats: ProxyStats) -> tuple[int, int, int, int]:
    return stats.accepted, stats.refused, stats.bytes_upstream, stats.bytes_downstream


# The recommended breaker.


async def test_it_opens_after_the_threshold_and_then_fails_fast_without_touching_redis(
    redis_proxy: FaultProxy, client: aioredis.Redis, key: str, clock: FakeClock
) -> None:
    breaker = recommended(clock)
    get = Reaching(client, key)
    await client.set(key, "v")
    assert await breaker.call_async(get) == b"v"

    redis_proxy.disable()
    for _ in range(3):
        assert breaker.state is CircuitState.CLOSED
        with pytest.raises(RedisConnectionError):
            await breaker.call_async(get)
    assert breaker.state is CircuitState.OPEN

    before = redis_proxy.stats()
    for _ in range(100):
        with pytest.raises(CircuitBreakerOpenError) as caught:
            await breaker.call_async(get)
    assert caught.value.retry_after == TIMEOUT_S
    assert counters(redis_proxy.stats()) == counters(before)
    assert get.calls == 4
    assert breaker.metrics().not_permitted == 100

    # The counters are live: the same call without the breaker reaches the proxy.
    with pytest.raises(RedisConnectionError):
        await get()
    assert redis_proxy.stats().refused == before.refused + 1


async def test_half_open_lets_through_at_most_max_calls_and_closes_when_redis_is_back(
    redis_proxy: FaultProxy, client: aioredis.Redis, key: str, clock: FakeClock
) -> None:
    breaker = recommended(clock, half_open_max_calls=2, success_threshold=2)
    get = Reaching(client, key)
    await fail_while_down(breaker.call_async, get, redis_proxy, 3)
    assert breaker.state is CircuitState.OPEN

    redis_proxy.add_toxic("latency", latency=100)  # back, slowly: the trials overlap
    clock.advance(TIMEOUT_S)
    before = redis_proxy.stats()
    get.calls = 0
    results = await asyncio.gather(
        *(breaker.call_async(get) for _ in range(10)), return_exceptions=True
    )
    rejections = [r for r in results if isinstance(r, CircuitBreakerOpenError)]
    assert get.calls == 2
    assert len(rejections) == 8
    assert {r.retry_after for r in rejections} == {1}
    assert redis_proxy.stats().accepted - before.accepted <= 2
    assert breaker.state is CircuitState.CLOSED

    redis_proxy.clear_toxics()
    assert await breaker.call_async(get) is None
    assert breaker.metrics().consecutive_failures == 0


async def test_a_failed_trial_reopens_and_only_the_trials_reach_the_proxy(
    redis_proxy: FaultProxy, client: aioredis.Redis, key: str, clock: FakeClock
) -> None:
    breaker = recommended(clock, half_open_max_calls=2)
    get = Reaching(client, key)
    await fail_while_down(breaker.call_async, get, redis_proxy, 3)

    redis_proxy.disable()  # still down when the timeout passes
    clock.advance(TIMEOUT_S)
    before = redis_proxy.stats()
    results = await asyncio.gather(
        *(breaker.call_async(get) for _ in range(10)), return_exceptions=True
    )
    assert sum(isinstance(r, RedisConnectionError) for r in results) == 2
    assert redis_proxy.stats().refused - before.refused == 2
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError) as caught:
        await breaker.call_async(get)
    assert caught.value.retry_after == TIMEOUT_S


async def test_a_slow_redis_trips_the_slow_call_rate_although_every_call_succeeds(
    redis_proxy: FaultProxy, client: aioredis.Redis, key: str
) -> None:
    breaker = CircuitBreaker(
        "redis",
        BreakerConfig(
            failure_threshold=None,
            slow_call_rate_threshold=100,
            slow_call_duration_s=0.05,
            window_size=3,
            minimum_calls=3,
        ),
    )
    get = Reaching(client, key)
    await client.set(key, "v")
    redis_proxy.add_toxic("latency", latency=200)
    for _ in range(3):
        assert await breaker.call_async(get) == b"v"
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics().slow_call_rate == 100
    before = redis_proxy.stats()
    with pytest.raises(CircuitBreakerOpenError):
        await breaker.call_async(get)
    assert counters(redis_proxy.stats()) == counters(before)


async def test_a_hanging_redis_trips_it_through_the_client_timeout(
    redis_proxy: FaultProxy, key: str, clock: FakeClock
) -> None:
    breaker = recommended(clock)
    hanging = client_via(redis_proxy, socket_timeout=0.2)
    try:
        get = Reaching(hanging, key)
        assert await breaker.call_async(get) is None
        redis_proxy.add_toxic("timeout", timeout=0)  # holds every byte: Redis never answers
        for _ in range(3):
            with pytest.raises(RedisTimeoutError):
                await asyncio.wait_for(breaker.call_async(get), LIVENESS_S)
        assert breaker.state is CircuitState.OPEN
    finally:
        await hanging.aclose()


# The sketch, under the same faults: its defects, asserted as behaviour.


async def test_sketch_defect_failures_never_reset_by_success(
    redis_proxy: FaultProxy, client: aioredis.Redis, key: str, clock: FakeClock
) -> None:
    sketch, fixed = sketched(clock, failure_threshold=3), recommended(clock, failure_threshold=3)
    for breaker in (sketch, fixed):
        get = Reaching(client, key)
        for _ in range(3):  # a flapping Redis: one success, then a failure, three times
            assert await breaker.call_async(get) is None
            await fail_while_down(breaker.call_async, get, redis_proxy, 1)
    assert sketch.state is CircuitState.OPEN  # three failures among six calls opened it
    assert fixed.state is CircuitState.CLOSED  # never three in a row


async def test_sketch_defect_successes_counted_while_closed_close_it_after_one_trial(
    redis_proxy: FaultProxy, client: aioredis.Redis, key: str, clock: FakeClock
) -> None:
    sketch = sketched(clock, success_threshold=3)
    fixed = recommended(clock, success_threshold=3)
    for breaker in (sketch, fixed):
        get = Reaching(client, key)
        for _ in range(10):  # a healthy spell
            await breaker.call_async(get)
        await fail_while_down(breaker.call_async, get, redis_proxy, 3)
        assert breaker.state is CircuitState.OPEN
    assert sketch.metrics().success_count == 10
    clock.advance(TIMEOUT_S)
    for breaker in (sketch, fixed):
        await breaker.call_async(Reaching(client, key))  # one successful trial
    assert sketch.state is CircuitState.CLOSED  # success_threshold 3 ignored
    assert fixed.state is CircuitState.HALF_OPEN


async def test_sketch_defect_half_open_max_calls_not_enforced(
    redis_proxy: FaultProxy, client: aioredis.Redis, key: str, clock: FakeClock
) -> None:
    sketch = sketched(clock, half_open_max_calls=1, success_threshold=100)
    fixed = recommended(clock, half_open_max_calls=1, success_threshold=100)
    reached = {}
    for breaker in (sketch, fixed):
        get = Reaching(client, key)
        await fail_while_down(breaker.call_async, get, redis_proxy, 3)
        redis_proxy.add_toxic("latency", latency=100)
        clock.advance(TIMEOUT_S)
        get.calls = 0
        await asyncio.gather(*(breaker.call_async(get) for _ in range(10)), return_exceptions=True)
        reached[type(breaker).__name__] = get.calls
        redis_proxy.clear_toxics()
    assert reached == {"SketchedCircuitBreaker": 10, "CircuitBreaker": 1}
