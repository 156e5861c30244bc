"""Opt-in shared breaker state through the real Redis: a trip in one process reaches the
others, a late starter reads it, and losing Redis leaves every breaker deciding locally.

Waiting for a published change is bounded by LIVENESS_S, far above a pub/sub hop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from rustok_ref.errors import CircuitBreakerOpenError
from rustok_ref.lab import infra
from rustok_ref.lab.faults import FaultProxy
from rustok_ref.resilience import BreakerConfig, CircuitBreaker, CircuitState, SharedBreakerState

pytestmark = pytest.mark.integration

LIVENESS_S = 10.0
TIMEOUT_S = 30.0


async def until(condition: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 (states and log lines raise no event)
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), LIVENESS_S)
    except TimeoutError:
        pytest.fail(f"not within {LIVENESS_S} s: {what}")


def breaker() -> CircuitBreaker:
    return CircuitBreaker("svc", BreakerConfig(failure_threshold=1, timeout_s=TIMEOUT_S))


def trip(target: CircuitBreaker) -> None:
    def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        target.call(down)


@pytest.fixture
def prefix(run_ns: infra.RunNamespace) -> str:
    return f"{run_ns.redis_prefix}shared-{uuid.uuid4().hex}:"


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as entered:
        yield entered


def state_client(stack: AsyncExitStack, url: str) -> aioredis.Redis:
    client = aioredis.Redis.from_url(url)
    stack.push_async_callback(client.aclose)
    return client


async def shared(
    stack: AsyncExitStack, target: CircuitBreaker, url: str, prefix: str
) -> SharedBreakerState:
    client = state_client(stack, url)
    state = await stack.enter_async_context(SharedBreakerState(target, client, prefix=prefix))
    await asyncio.wait_for(state.ready.wait(), LIVENESS_S)
    return state


async def test_a_trip_reaches_the_other_instances_and_a_late_starter(
    stack: AsyncExitStack, run_ns: infra.RunNamespace, prefix: str
) -> None:
    first, second = breaker(), breaker()
    await shared(stack, first, run_ns.redis_url, prefix)
    state = await shared(stack, second, run_ns.redis_url, prefix)

    trip(first)
    await until(lambda: second.state is CircuitState.OPEN, "the second breaker opened")
    calls: list[int] = []
    with pytest.raises(CircuitBreakerOpenError) as caught:
        second.call(calls.append, 1)
    assert calls == []
    assert 1 <= caught.value.retry_after <= TIMEOUT_S
    ttl_ms = await state_client(stack, run_ns.redis_url).pttl(state.key)
    assert 0 < ttl_ms <= TIMEOUT_S * 1000

    late = breaker()
    await shared(stack, late, run_ns.redis_url, prefix)
    assert late.state is CircuitState.OPEN

    first.close()
    await until(lambda: second.state is late.state is CircuitState.CLOSED, "the others closed too")
    first.force_open()
    await until(lambda: second.state is CircuitState.FORCED_OPEN, "isolated everywhere")
    first.close()
    await until(lambda: second.state is CircuitState.CLOSED, "closed everywhere")


async def test_half_open_is_not_shared(
    stack: AsyncExitStack, run_ns: infra.RunNamespace, prefix: str
) -> None:
    now = [0.0]
    first = CircuitBreaker(
        "svc", BreakerConfig(failure_threshold=1, timeout_s=TIMEOUT_S), clock=lambda: now[0]
    )
    second = breaker()
    await shared(stack, first, run_ns.redis_url, prefix)
    await shared(stack, second, run_ns.redis_url, prefix)
    trip(first)
    await until(lambda: second.state is CircuitState.OPEN, "the second breaker opened")
    now[0] += TIMEOUT_S  # first's open period is over, on its clock
    first.call(lambda: None)  # first probes on its own
    assert first.state is CircuitState.HALF_OPEN
    trip(first)  # its trial fails: open again, shared again
    second.close()  # an operator closes the second: that is shared too
    await until(lambda: first.state is CircuitState.CLOSED, "the first followed the close")


async def test_a_trip_in_another_process_opens_this_one(
    stack: AsyncExitStack, run_ns: infra.RunNamespace, prefix: str
) -> None:
    here = breaker()
    await shared(stack, here, run_ns.redis_url, prefix)
    child = textwrap.dedent(
        f"""
        import asyncio, redis.asyncio as aioredis
        from rustok_ref.resilience import BreakerConfig, CircuitBreaker, SharedBreakerState

        async def main():
            client = aioredis.Redis.from_url({run_ns.redis_url!r})
            there = CircuitBreaker("svc", BreakerConfig(failure_threshold=1, timeout_s=30))
            async with SharedBreakerState(there, client, prefix={prefix!r}) as state:
                await state.ready.wait()
                there.open()
                while await client.exists(state.key) == 0:
                    await asyncio.sleep(0.01)
            await client.aclose()

        asyncio.run(main())
        """
    )
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", child], timeout=60, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    await until(lambda: here.state is CircuitState.OPEN, "the other process's trip arrived")


async def test_without_redis_each_breaker_decides_locally(
    stack: AsyncExitStack,
    services: infra.Services,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    parts = urlsplit(services.redis_url)
    proxy = stack.enter_context(
        FaultProxy("redis", upstream=(parts.hostname or "127.0.0.1", parts.port or 6379))
    )
    client = aioredis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        socket_connect_timeout=LIVENESS_S,
        retry=Retry(NoBackoff(), 0),
    )
    stack.push_async_callback(client.aclose)
    local = breaker()
    state = await stack.enter_async_context(
        SharedBreakerState(local, client, prefix=prefix, reconnect_delay_s=0.05)
    )
    await asyncio.wait_for(state.ready.wait(), LIVENESS_S)

    proxy.disable()
    trip(local)
    assert local.state is CircuitState.OPEN
    await until(lambda: "could not share" in caplog.text, "the failed publish was logged")
    with pytest.raises(CircuitBreakerOpenError):
        local.call(lambda: None)
    local.close()
    assert local.call(lambda: "ok") == "ok"

    await until(lambda: "lost the shared state" in caplog.text, "the follower noticed")
    state.ready.clear()
    proxy.enable()
    await asyncio.wait_for(state.ready.wait(), LIVENESS_S)  # following again
