"""The resilient cache's fallback rules, with no Redis at all: the breaker is forced open
(every call is refused before any I/O), or the client points at a loopback port that refuses
connections, or at a loopback server that accepts and never answers. Time is a fake clock;
the stale bound is checked on both sides of its edge. Only the per-call timeout runs on real
time, under a liveness bound a hundred times longer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rustok_ref.resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    ResilientRedisCache,
    counts_as_outage,
)

STALE_S = 60.0
PREFIX = "rustok:unit:"
CALL_TIMEOUT_S = 0.05
LIVENESS_S = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port bound and never listened on: a connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def client(refusing_port: int) -> AsyncIterator[aioredis.Redis]:
    opened = aioredis.Redis(host="127.0.0.1", port=refusing_port, retry=Retry(NoBackoff(), 0))
    yield opened
    await opened.aclose()


def isolated(
    client: aioredis.Redis, clock: FakeClock, *, max_pending: int = 100
) -> ResilientRedisCache:
    """A cache whose breaker is forced open: Redis is never called."""
    cache = ResilientRedisCache(
        client, PREFIX, stale_for_s=STALE_S, max_pending=max_pending, clock=clock
    )
    cache.breaker.force_open()
    return cache


class Loader:
    def __init__(self, value: str | None) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        return self.value


@pytest.mark.parametrize(
    ("elapsed", "served"),
    [(0.0, True), (STALE_S - 0.001, True), (STALE_S, False), (STALE_S * 10, False)],
)
async def test_a_local_copy_is_served_only_within_stale_for_s(
    client: aioredis.Redis, clock: FakeClock, elapsed: float, served: bool
) -> None:
    cache = isolated(client, clock)
    clock.now = 100.0
    assert await cache.set("k", "v") is False  # dropped, kept locally at t = 100
    clock.now += elapsed
    assert await cache.get("k") == (b"v" if served else None)
    stats = cache.stats()
    assert (stats.local_hits, stats.unserved) == ((1, 0) if served else (0, 1))


async def test_past_the_bound_the_loader_answers_and_its_value_is_fresh_for_another_bound(
    client: aioredis.Redis, clock: FakeClock
) -> None:
    cache = isolated(client, clock)
    await cache.set("k", "old")
    clock.now = STALE_S
    loader = Loader("new")
    assert await cache.get("k", loader) == b"new"
    clock.now += STALE_S - 0.001
    assert await cache.get("k", loader) == b"new"
    assert loader.calls == 1
    stats = cache.stats()
    assert (stats.fallback_loads, stats.local_hits, stats.fallbacks) == (1, 1, 2)


async def test_with_no_copy_and_no_loader_a_read_is_a_miss_and_a_loader_none_is_not_kept(
    client: aioredis.Redis, clock: FakeClock
) -> None:
    cache = isolated(client, clock)
    assert await cache.get("k") is None
    nothing = Loader(None)
    assert await cache.get("k", nothing) is None
    assert await cache.get("k", nothing) is None
    assert nothing.calls == 2
    assert cache.stats().unserved == 1


async def test_a_delete_during_a_fault_forgets_the_local_copy_at_once_and_is_queued(
    client: aioredis.Redis, clock: FakeClock
) -> None:
    cache = isolated(client, clock)
    await cache.set("k", b"v")
    assert await cache.delete("k") is False
    assert await cache.get("k") is None
    stats = cache.stats()
    assert (stats.dropped_writes, stats.deferred_deletes, stats.pending) == (1, 2, 1)
    assert stats.rejected == 3
    assert stats.breaker is CircuitState.FORCED_OPEN


async def test_the_backlog_is_bounded_and_gives_up_the_oldest(
    client: aioredis.Redis, clock: FakeClock
) -> None:
    cache = isolated(client, clock, max_pending=2)
    for key in ("a", "b", "c", "a"):
        await cache.delete(key)
    for message in ("1", "2", "3"):
        assert await cache.publish("channel", message) is False
    assert await cache.incr("n") is None
    stats = cache.stats()
    assert (stats.deferred_deletes, stats.deferred_publishes) == (4, 3)
    assert (stats.pending, stats.given_up) == (4, 3)  # a, then b, then message 1
    assert stats.dropped_writes == 1
    assert await cache.replay() is False, "the breaker is still open"
    assert cache.stats().pending == 4


async def test_a_refused_connection_is_an_error_that_trips_the_breaker_then_calls_are_refused(
    client: aioredis.Redis, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(
        "redis",
        BreakerConfig(failure_threshold=2, timeout_s=30, is_failure=counts_as_outage),
        clock=clock,
    )
    cache = ResilientRedisCache(client, PREFIX, breaker=breaker, clock=clock)
    for _ in range(3):
        assert await cache.get("k") is None
    stats = cache.stats()
    assert (stats.errors, stats.rejected, stats.unserved) == (2, 1, 3)
    assert breaker.state is CircuitState.OPEN


def test_counts_as_outage_only_for_unreachable_or_silent_redis() -> None:
    assert counts_as_outage(RedisConnectionError("refused"))
    assert counts_as_outage(RedisTimeoutError("slow"))
    assert counts_as_outage(TimeoutError())
    assert not counts_as_outage(ResponseError("WRONGTYPE"))
    assert not counts_as_outage(ValueError("a bug"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": "rustok:unit"}, "prefix"),
        ({"prefix": ""}, "prefix"),
        ({"call_timeout_s": 0}, "call_timeout_s"),
        ({"stale_for_s": -1.0}, "stale_for_s"),
        ({"capacity": 0}, "capacity"),
        ({"max_pending": 0}, "max_pending"),
    ],
)
async def test_it_refuses_nonsense_settings(
    client: aioredis.Redis, options: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"prefix": PREFIX} | options
    with pytest.raises(ValueError, match=message):
        ResilientRedisCache(client, **arguments)  # type: ignore[arg-type]


async def test_it_refuses_a_decoding_client_and_a_nonpositive_ttl(
    client: aioredis.Redis, clock: FakeClock
) -> None:
    decoding = aioredis.Redis(decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        ResilientRedisCache(decoding, PREFIX)
    await decoding.aclose()
    with pytest.raises(ValueError, match="ttl_s"):
        await isolated(client, clock).set("k", "v", ttl_s=0)


class SilentServer:
    """Accepts connections on loopback, reads, and never answers."""

    def __init__(self) -> None:
        self.received = asyncio.Event()  # a client is connected and waits for an answer
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if await reader.read(1):
            self.received.set()

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


@pytest.fixture
async def silent() -> AsyncIterator[tuple[SilentServer, aioredis.Redis]]:
    server = SilentServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    client = aioredis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=LIVENESS_S,
        socket_connect_timeout=LIVENESS_S,
        retry=Retry(NoBackoff(), 0),
    )
    yield server, client
    await client.aclose()
    server.close()
    listening.close()
    await listening.wait_closed()


async def test_a_silent_server_is_cut_off_after_call_timeout_s_and_the_read_falls_back(
    silent: tuple[SilentServer, aioredis.Redis], clock: FakeClock
) -> None:
    _, client = silent
    cache = ResilientRedisCache(client, PREFIX, call_timeout_s=CALL_TIMEOUT_S, clock=clock)
    assert await asyncio.wait_for(cache.set("k", "v"), LIVENESS_S) is False
    assert await asyncio.wait_for(cache.get("k"), LIVENESS_S) == b"v"
    assert cache.stats().errors == 2
    assert cache.breaker.metrics().failures == 2
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0, "no cancellation request left behind"


async def test_a_caller_cancelled_meanwhile_is_cancelled_not_timed_out(
    silent: tuple[SilentServer, aioredis.Redis], clock: FakeClock
) -> None:
    server, client = silent
    cache = ResilientRedisCache(client, PREFIX, call_timeout_s=LIVENESS_S, clock=clock)
    reading = asyncio.create_task(cache.get("k"))
    await asyncio.wait_for(server.received.wait(), LIVENESS_S)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    metrics = cache.breaker.metrics()
    assert (metrics.failures, metrics.ignored) == (0, 1), "a cancellation is no outage"
    assert cache.stats().errors == 0
