"""The resilient Redis cache in front of the real Redis, with outages from the fault proxy.

Each cache talks to Redis through the proxy; the test checks Redis itself through a direct
client. Fail-fast is proven by the proxy's counters: while the breaker is open, no connection
is attempted and no byte moves. The breaker and the cache share a fake clock (the open
timeout and the stale bound pass when the test says so); only the hanging-Redis test depends
on real time, for the per-call timeout, under a liveness bound far above it (the half-open
test's latency toxic only makes its trials overlap).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import FakeClock

from rustok_ref.errors import InternalError
from rustok_ref.lab import infra
from rustok_ref.lab.faults import FaultProxy, ProxyStats
from rustok_ref.resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    ResilientRedisCache,
    counts_as_outage,
)
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.cache_v1 import HandWrittenTenantCache
from rustok_ref.tenancy.invalidation import (
    InvalidationListener,
    RedisInvalidationPublisher,
    ResilientInvalidationPublisher,
)
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier
from rustok_ref.tenancy.repository import TenantRepository, load_tenant

pytestmark = pytest.mark.integration

LIVENESS_S = 10.0  # ten times the longest timeout configured here
CALL_TIMEOUT_S = 1.0  # enough for a new connection's handshake behind a 100 ms latency toxic
TIMEOUT_S = 30.0  # the breaker's open timeout, on the fake clock
STALE_S = 600.0  # longer than an open spell: local copies outlive the outages here
THRESHOLD = 3


@pytest.fixture
async def proxied(
    redis_proxy: FaultProxy, run_ns: infra.RunNamespace
) -> AsyncIterator[aioredis.Redis]:
    """A client through the proxy, on the run's database, without redis-py's retries."""
    client = aioredis.Redis(
        host="127.0.0.1",
        port=redis_proxy.port,
        db=int(urlsplit(run_ns.redis_url).path.lstrip("/") or 0),
        socket_timeout=LIVENESS_S,
        socket_connect_timeout=LIVENESS_S,
        retry=Retry(NoBackoff(), 0),
    )
    yield client
    await client.aclose()


@pytest.fixture
def prefix(run_ns: infra.RunNamespace) -> str:
    return f"{run_ns.redis_prefix}resilient-{uuid.uuid4().hex[:8]}:"


def breaker_on(clock: FakeClock, **config: float) -> CircuitBreaker:
    settings: dict[str, float] = {
        "failure_threshold": THRESHOLD,
        "success_threshold": 2,
        "half_open_max_calls": 2,
        "timeout_s": TIMEOUT_S,
    }
    return CircuitBreaker(
        "redis",
        BreakerConfig(**(settings | config), is_failure=counts_as_outage),  # type: ignore[arg-type]
        clock=clock,
    )


def cache_on(
    client: aioredis.Redis, prefix: str, clock: FakeClock, **breaker: float
) -> ResilientRedisCache:
    return ResilientRedisCache(
        client,
        prefix,
        breaker=breaker_on(clock, **breaker),
        call_timeout_s=CALL_TIMEOUT_S,
        stale_for_s=STALE_S,
        clock=clock,
    )


@pytest.fixture
def cache(proxied: aioredis.Redis, prefix: str, clock: FakeClock) -> ResilientRedisCache:
    return cache_on(proxied, prefix, clock)


def counters(stats: ProxyStats) -> tuple[int, int, int, int]:
    return stats.accepted, stats.refused, stats.bytes_upstream, stats.bytes_downstream


async def trip(cache: ResilientRedisCache, proxy: FaultProxy) -> None:
    """Take Redis down and read until the breaker opens: every read is served locally."""
    proxy.disable()
    for _ in range(THRESHOLD):
        assert cache.breaker.state is CircuitState.CLOSED
        assert await cache.get("a") == b"1"
    assert cache.breaker.state is CircuitState.OPEN


async def loaded() -> str:
    return "from the source"


async def test_while_redis_answers_it_reads_and_writes_redis_under_its_prefix(
    cache: ResilientRedisCache, redis_client: aioredis.Redis, prefix: str
) -> None:
    assert await cache.set("a", "1") is True
    assert await redis_client.get(prefix + "a") == b"1"
    assert await cache.get("a") == b"1"
    assert await cache.get("missing") is None
    assert await cache.get("loaded", loaded, ttl_s=60) == b"from the source"
    assert await redis_client.get(prefix + "loaded") == b"from the source"
    assert 0 < await redis_client.pttl(prefix + "loaded") <= 60_000
    assert await cache.delete("a") is True
    assert await redis_client.exists(prefix + "a") == 0
    assert await cache.incr("n") == 1
    assert await cache.incr("n", 2) == 3
    stats = cache.stats()
    assert (stats.remote_hits, stats.remote_misses, stats.loads) == (1, 2, 1)
    assert stats.fallbacks == stats.dropped_writes == stats.pending == 0


async def test_the_breaker_opens_after_the_threshold_while_redis_is_down_and_reads_are_still_served(
    cache: ResilientRedisCache, redis_proxy: FaultProxy
) -> None:
    await cache.set("a", "1")
    await trip(cache, redis_proxy)
    stats = cache.stats()
    assert (stats.errors, stats.local_hits, stats.rejected) == (THRESHOLD, THRESHOLD, 0)
    assert stats.breaker is CircuitState.OPEN


async def test_while_open_every_operation_fails_fast_and_the_proxy_counters_stay_flat(
    cache: ResilientRedisCache, redis_proxy: FaultProxy, proxied: aioredis.Redis
) -> None:
    await cache.set("a", "1")
    await trip(cache, redis_proxy)
    before = redis_proxy.stats()
    for i in range(20):  # no exception reaches the caller
        assert await cache.get("a") == b"1"
        assert await cache.get(f"never-seen-{i}") is None
        assert await cache.get(f"loaded-{i}", loaded) == b"from the source"
        assert await cache.set("b", "2") is False
        assert await cache.delete("c") is False
        assert await cache.incr("n") is None
        assert await cache.publish("channel", "message") is False
    assert counters(redis_proxy.stats()) == counters(before)
    stats = cache.stats()
    assert stats.rejected == 20 * 7
    assert cache.breaker.metrics().not_permitted == 20 * 7
    assert (stats.local_hits, stats.unserved, stats.fallback_loads) == (THRESHOLD + 20, 20, 20)

    # The counters are live: the same client without the cache reaches the proxy.
    with pytest.raises(RedisConnectionError):
        await proxied.get("a")
    assert redis_proxy.stats().refused == before.refused + 1


async def test_writes_during_the_outage_are_dropped_counted_and_never_undone_by_redis(
    cache: ResilientRedisCache,
    redis_proxy: FaultProxy,
    redis_client: aioredis.Redis,
    prefix: str,
    clock: FakeClock,
) -> None:
    await cache.set("a", "1")
    await cache.set("k", "old")
    await cache.set("gone", "here")
    await trip(cache, redis_proxy)

    assert await cache.set("k", "new") is False
    assert await cache.get("k") == b"new", "the dropped write is applied to the local copy"
    assert await cache.delete("gone") is False
    assert await cache.get("gone") is None, "the delete is applied locally at once"
    assert await redis_client.get(prefix + "k") == b"old"  # Redis never got the write
    stats = cache.stats()
    assert (stats.dropped_writes, stats.deferred_deletes, stats.pending) == (1, 2, 2)

    redis_proxy.enable()
    clock.advance(TIMEOUT_S)
    assert await cache.get("k") is None, "the queued DEL went first: 'old' is never served"
    assert await redis_client.exists(prefix + "k", prefix + "gone") == 0
    stats = cache.stats()
    assert (stats.replayed, stats.pending) == (2, 0)


async def test_half_open_lets_through_at_most_half_open_max_calls_and_serves_the_rest_locally(
    cache: ResilientRedisCache, redis_proxy: FaultProxy, clock: FakeClock
) -> None:
    await cache.set("a", "1")
    await trip(cache, redis_proxy)
    redis_proxy.enable()
    redis_proxy.add_toxic("latency", latency=100)  # back, slowly: the trials overlap
    clock.advance(TIMEOUT_S)
    before, proxy_before = cache.stats(), redis_proxy.stats()
    metrics_before = cache.breaker.metrics()

    results = await asyncio.wait_for(
        asyncio.gather(*(cache.get("a") for _ in range(10))), LIVENESS_S
    )

    assert results == [b"1"] * 10
    after, metrics = cache.stats(), cache.breaker.metrics()
    assert metrics.successes - metrics_before.successes == 2
    assert metrics.not_permitted - metrics_before.not_permitted == 8
    assert after.remote_hits - before.remote_hits == 2
    assert after.local_hits - before.local_hits == 8
    assert redis_proxy.stats().accepted - proxy_before.accepted <= 2
    assert cache.breaker.state is CircuitState.CLOSED


async def test_it_closes_after_success_threshold_when_redis_is_back_and_reads_go_remote_again(
    cache: ResilientRedisCache,
    redis_proxy: FaultProxy,
    redis_client: aioredis.Redis,
    prefix: str,
    clock: FakeClock,
) -> None:
    await cache.set("a", "1")
    await trip(cache, redis_proxy)
    redis_proxy.enable()
    await redis_client.set(prefix + "a", "2")  # changed in Redis meanwhile
    assert await cache.get("a") == b"1", "still open: the local copy"
    clock.advance(TIMEOUT_S)
    assert await cache.get("a") == b"2"
    assert cache.breaker.state is CircuitState.HALF_OPEN
    assert await cache.get("a") == b"2"
    assert cache.breaker.state is CircuitState.CLOSED
    before = redis_proxy.stats()
    assert await cache.get("a") == b"2"
    assert redis_proxy.stats().bytes_upstream > before.bytes_upstream
    assert cache.stats().remote_hits == 3


async def test_a_hanging_redis_is_cut_off_by_the_call_timeout_and_trips_the_breaker(
    proxied: aioredis.Redis, redis_proxy: FaultProxy, prefix: str, clock: FakeClock
) -> None:
    cache = ResilientRedisCache(
        proxied, prefix, breaker=breaker_on(clock), call_timeout_s=0.05, clock=clock
    )
    await cache.set("a", "1")
    redis_proxy.add_toxic("timeout", timeout=0)  # holds every byte: Redis never answers
    for _ in range(THRESHOLD):
        assert await asyncio.wait_for(cache.get("a"), LIVENESS_S) == b"1"
    assert cache.breaker.state is CircuitState.OPEN
    assert cache.stats().errors == THRESHOLD


async def test_an_error_reply_is_an_answer_it_reaches_the_caller_and_trips_nothing(
    cache: ResilientRedisCache,
) -> None:
    await cache.set("text", "not a number")
    with pytest.raises(ResponseError):
        await cache.incr("text")
    assert cache.breaker.metrics().failures == 0
    assert cache.stats().errors == 0


async def test_caches_sharing_one_breaker_fail_fast_together(
    proxied: aioredis.Redis, redis_proxy: FaultProxy, prefix: str, clock: FakeClock
) -> None:
    """How another cache (the feature flags') joins: its own prefix and local copy, the same
    breaker, so an outage one of them noticed spares the other its attempts."""
    breaker = breaker_on(clock)
    tenants = ResilientRedisCache(proxied, prefix + "tenants:", breaker=breaker, clock=clock)
    flags = ResilientRedisCache(proxied, prefix + "flags:", breaker=breaker, clock=clock)
    await flags.set("acme", '{"commerce": true}')
    redis_proxy.disable()
    for _ in range(THRESHOLD):
        assert await tenants.incr("hits") is None
    before = redis_proxy.stats()
    assert await flags.get("acme") == b'{"commerce": true}'
    assert counters(redis_proxy.stats()) == counters(before)
    assert (flags.stats().rejected, tenants.stats().errors) == (1, THRESHOLD)


# Invalidation through the breaker.


class Loads:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.calls = 0

    async def __call__(self, identifier: TenantIdentifier) -> Tenant | None:
        self.calls += 1
        return await load_tenant(self.sessions, identifier)


def within(awaitable: Awaitable[object]) -> Awaitable[object]:
    return asyncio.wait_for(awaitable, LIVENESS_S)


async def test_a_publish_during_the_outage_invalidates_here_at_once_and_elsewhere_once_back(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    proxied: aioredis.Redis,
    redis_proxy: FaultProxy,
    prefix: str,
    clock: FakeClock,
) -> None:
    """The outage is on the publisher's path only: the other instance stays subscribed (its
    own connection), so only the replayed message can tell it."""
    here, there = TenantCache(Loads(sessions)), TenantCache(Loads(sessions))
    backend = cache_on(proxied, prefix, clock, failure_threshold=1)
    repository = TenantRepository(sessions, ResilientInvalidationPublisher(backend, local=here))
    async with InvalidationListener(redis_client, prefix, there) as listener:
        await within(listener.wait_subscribed())
        created = await repository.create(f"rc-{uuid.uuid4().hex[:12]}", "Acme")
        await within(listener.wait_messages(1))
        by_id = TenantIdentifier(IdentifierKind.UUID, str(created.id))
        assert await here.get_or_load(by_id) == created
        assert await there.get_or_load(by_id) == created

        redis_proxy.disable()
        renamed = await repository.rename(created.id, f"rr-{uuid.uuid4().hex[:12]}")
        assert await here.get_or_load(by_id) == renamed, "invalidated locally at once"
        assert await there.get_or_load(by_id) == created, "the message has not reached it"
        stats = backend.stats()
        assert (stats.deferred_publishes, stats.pending) == (1, 1)
        assert backend.breaker.state is CircuitState.OPEN

        redis_proxy.enable()
        assert await backend.replay() is False, "open: not before the breaker's timeout"
        clock.advance(TIMEOUT_S)
        assert await backend.replay() is True
        await within(listener.wait_messages(2))
        assert await there.get_or_load(by_id) == renamed
        assert backend.stats().replayed == 1


# The hand-written v1 tenant cache, faithful and with the resilient backend.


@pytest.fixture
async def tenant(
    sessions: async_sessionmaker[AsyncSession], redis_client: aioredis.Redis, prefix: str
) -> Tenant:
    repository = TenantRepository(sessions, RedisInvalidationPublisher(redis_client, prefix))
    return await repository.create(f"v1-{uuid.uuid4().hex[:12]}", "V1")


def slug_of(tenant: Tenant) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.SLUG, tenant.slug)


async def test_v1_resilient_survives_a_redis_outage(
    sessions: async_sessionmaker[AsyncSession],
    proxied: aioredis.Redis,
    redis_client: aioredis.Redis,
    redis_proxy: FaultProxy,
    prefix: str,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    loads = Loads(sessions)
    backend = cache_on(proxied, prefix, clock)
    v1 = HandWrittenTenantCache(loads, backend=backend)
    hits = prefix + "tenant_metrics:v1:hits"
    assert await v1.get_or_load(slug_of(tenant)) == tenant
    assert await v1.get_or_load(slug_of(tenant)) == tenant
    assert await redis_client.get(hits) == b"1"

    redis_proxy.disable()
    for _ in range(5):
        assert await v1.get_or_load(slug_of(tenant)) == tenant
    nobody = TenantIdentifier(IdentifierKind.SLUG, f"nobody-{uuid.uuid4().hex[:8]}")
    assert await v1.get_or_load(nobody) is None  # a miss still loads from the database
    assert loads.calls == 2
    assert v1.metrics()["hits"] == 6, "its own counters keep counting"
    stats = backend.stats()
    assert stats.dropped_writes == stats.errors + stats.rejected, "every INCR was dropped"
    assert stats.errors == THRESHOLD, "then the open breaker spared Redis the rest"

    redis_proxy.enable()
    clock.advance(TIMEOUT_S)
    assert await v1.get_or_load(slug_of(tenant)) == tenant
    assert await redis_client.get(hits) == b"2", "the counters in Redis resume"


async def test_v1_faithful_raises_on_a_redis_outage(
    sessions: async_sessionmaker[AsyncSession],
    proxied: aioredis.Redis,
    redis_proxy: FaultProxy,
    prefix: str,
    tenant: Tenant,
) -> None:
    v1 = HandWrittenTenantCache(Loads(sessions), redis=proxied, redis_prefix=prefix)
    assert await v1.get_or_load(slug_of(tenant)) == tenant
    redis_proxy.disable()
    with pytest.raises(InternalError):
        await v1.get_or_load(slug_of(tenant))  # a cached tenant, yet an error


async def test_a_closed_uvloop_transport_is_an_outage_and_other_runtime_errors_are_bugs(
    cache: ResilientRedisCache,
) -> None:
    """Under uvicorn's uvloop, redis-py writing to a connection Redis dropped raises this
    RuntimeError (seen in the API when Redis went away): the cache answers as for any
    outage; another RuntimeError is a bug and propagates."""

    async def closed_transport(*, keys: list[str], args: list[object]) -> None:
        raise RuntimeError(
            "unable to perform operation on <TCPTransport closed=True reading=False "
            "0x557e28f8fac0>; the handler is closed"
        )

    async def bug(*, keys: list[str], args: list[object]) -> None:
        raise RuntimeError("a bug")

    assert await cache.run_script(closed_transport, ["k"], []) is None  # type: ignore[arg-type]
    assert cache.stats().errors == 1
    with pytest.raises(RuntimeError, match="a bug"):
        await cache.run_script(bug, ["k"], [])  # type: ignore[arg-type]
    assert cache.stats().errors == 1
