"""Per-tenant feature flags against the real PostgreSQL and Redis: toggles, `require`, the
outbox event of a change, invalidation from one instance to another over Redis, a Redis
outage (the fault proxy) that fails no evaluation and no change, and the database reads of
the cached mode against the review's `cache=False` sketch."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Literal
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref import telemetry
from rustok_ref.errors import FeatureNotEnabledError
from rustok_ref.features import (
    EVALUATION_EVENT,
    EvaluationReason,
    Feature,
    FeatureFlags,
    FlagCache,
    FlagInvalidationListener,
    FlagInvalidationPublisher,
    FlagStore,
    in_rollout,
)
from rustok_ref.lab import infra
from rustok_ref.lab.faults import FaultProxy
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.resilience import ResilientRedisCache
from rustok_ref.storage.tables import outbox
from rustok_ref.storage.unit_of_work import UnitOfWork

pytestmark = pytest.mark.integration

TTL_S = 30.0  # on the fake clock
CALL_TIMEOUT_S = 1.0
LIVENESS_S = 20.0  # ten times and more the longest timeout here


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def within(awaitable: Awaitable[None]) -> None:
    await asyncio.wait_for(awaitable, LIVENESS_S)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prefix(run_ns: infra.RunNamespace) -> str:
    return f"{run_ns.redis_prefix}flags-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def redis_proxy(services: infra.Services) -> Iterator[FaultProxy]:
    parts = urlsplit(services.redis_url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
    with FaultProxy("redis", upstream=upstream, rng=random.Random(1)) as proxy:
        yield proxy


@pytest.fixture
async def proxied(
    redis_proxy: FaultProxy, run_ns: infra.RunNamespace
) -> AsyncIterator[aioredis.Redis]:
    """A client through the proxy, without redis-py's retries (the breaker decides)."""
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


class Instance:
    """One process's flags: its cache, store (publishing through `redis`) and service."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis,
        prefix: str,
        clock: FakeClock,
        *,
        cache: Literal[False] | None = None,
    ) -> None:
        self.cache = FlagCache(ttl_s=TTL_S, clock=clock)
        self.backend = ResilientRedisCache(
            redis, prefix, call_timeout_s=CALL_TIMEOUT_S, clock=clock
        )
        publisher = FlagInvalidationPublisher(self.backend, local=self.cache)
        self.store = FlagStore(sessions, after_commit=publisher)
        self.flags = FeatureFlags(self.store, cache=self.cache if cache is None else cache)


@pytest.fixture
def instance(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
    clock: FakeClock,
) -> Instance:
    return Instance(sessions, redis_client, prefix, clock)


async def test_flags_are_per_tenant(instance: Instance) -> None:
    acme, globex = uuid.uuid4(), uuid.uuid4()
    await instance.store.set(acme, Feature.COMMERCE, enabled=True)
    await instance.store.set(globex, Feature.COMMERCE, enabled=False)
    assert await instance.flags.is_enabled(acme, Feature.COMMERCE)
    assert not await instance.flags.is_enabled(globex, Feature.COMMERCE)
    assert not await instance.flags.is_enabled(acme, Feature.BLOG)  # no flag: off
    reasons = [
        (await instance.flags.evaluate(t, f)).reason
        for t, f in [(acme, Feature.COMMERCE), (globex, Feature.COMMERCE), (acme, Feature.BLOG)]
    ]
    assert reasons == [
        EvaluationReason.TARGETING_MATCH,
        EvaluationReason.DISABLED,
        EvaluationReason.DEFAULT,
    ]


async def test_require_refuses_a_disabled_tenant(instance: Instance) -> None:
    on, off = uuid.uuid4(), uuid.uuid4()
    await instance.store.set(on, Feature.FORUM, enabled=True)
    await instance.store.set(off, Feature.FORUM, enabled=False)
    await instance.flags.require(on, Feature.FORUM)
    with pytest.raises(FeatureNotEnabledError) as refused:
        await instance.flags.require(off, Feature.FORUM)
    assert (refused.value.status, refused.value.extra) == (403, {"feature": "forum"})


async def test_a_rollout_follows_the_tenants_bucket(instance: Instance) -> None:
    tenants = [uuid.uuid4() for _ in range(20)]
    for tenant in tenants:
        await instance.store.set(tenant, Feature.PAGES, enabled=True, rollout=40)
    for tenant in tenants:
        result = await instance.flags.evaluate(tenant, Feature.PAGES)
        assert result.reason is EvaluationReason.SPLIT
        assert result.value == in_rollout(tenant, Feature.PAGES, 40)


async def test_a_change_is_versioned_and_its_event_in_the_outbox(
    instance: Instance, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = uuid.uuid4()
    first = await instance.store.set(tenant, Feature.BLOG, enabled=True)
    second = await instance.store.set(tenant, Feature.BLOG, enabled=False, variant="v2")
    assert (first.version, second.version) == (1, 2)
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        query = select(outbox.c.type, outbox.c.payload).order_by(outbox.c.seq)
        rows = (await uow.session.execute(query)).all()
    assert [(kind, payload["enabled"], payload["version"]) for kind, payload in rows] == [
        ("feature_flag.changed", True, 1),
        ("feature_flag.changed", False, 2),
    ]


async def test_a_change_on_one_instance_reaches_anothers_cache(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
    clock: FakeClock,
) -> None:
    a = Instance(sessions, redis_client, prefix, clock)
    b = Instance(sessions, redis_client, prefix, clock)
    tenant = uuid.uuid4()
    await a.store.set(tenant, Feature.REALTIME_CHAT, enabled=False)
    async with FlagInvalidationListener(redis_client, prefix, b.cache) as listener:
        await within(listener.wait_for(subscriptions=1))
        assert not await b.flags.is_enabled(tenant, Feature.REALTIME_CHAT)  # now cached in b
        await a.store.set(tenant, Feature.REALTIME_CHAT, enabled=True)
        await within(listener.wait_for(messages=1))
        assert await b.flags.is_enabled(tenant, Feature.REALTIME_CHAT)  # no TTL has passed
    assert b.cache.loads == 2


async def test_a_redis_outage_fails_no_evaluation_and_no_change(
    sessions: async_sessionmaker[AsyncSession],
    proxied: aioredis.Redis,
    redis_client: aioredis.Redis,
    redis_proxy: FaultProxy,
    prefix: str,
    clock: FakeClock,
) -> None:
    a = Instance(sessions, proxied, prefix, clock)  # publishes through the proxy
    b = Instance(sessions, redis_client, prefix, clock)
    tenant = uuid.uuid4()
    await a.store.set(tenant, Feature.ADVANCED_SEARCH, enabled=False)
    async with FlagInvalidationListener(redis_client, prefix, b.cache) as listener:
        await within(listener.wait_for(subscriptions=1))
        assert not await b.flags.is_enabled(tenant, Feature.ADVANCED_SEARCH)
        redis_proxy.disable()
        await a.store.set(tenant, Feature.ADVANCED_SEARCH, enabled=True)  # does not raise
        assert a.backend.stats().pending == 1  # the invalidation waits for Redis
        assert await a.flags.is_enabled(tenant, Feature.ADVANCED_SEARCH)  # a forgot locally
        assert not await b.flags.is_enabled(tenant, Feature.ADVANCED_SEARCH)  # b: not yet told
        redis_proxy.enable()
        assert await a.backend.replay()
        await within(listener.wait_for(messages=1))
        assert await b.flags.is_enabled(tenant, Feature.ADVANCED_SEARCH)


async def test_the_sketch_reads_the_database_on_every_call_the_cache_once_per_ttl(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
    clock: FakeClock,
) -> None:
    cached = Instance(sessions, redis_client, prefix, clock)
    sketch = Instance(sessions, redis_client, prefix, clock, cache=False)
    tenant = uuid.uuid4()
    await cached.store.set(tenant, Feature.VIDEO_STREAMING, enabled=True)
    trips = RoundTrips()
    trips.watch_engine(engine)
    try:
        assert await sketch.flags.is_enabled(tenant, Feature.VIDEO_STREAMING)
        per_read = trips.database
        assert per_read > 0
        for _ in range(9):
            assert await sketch.flags.is_enabled(tenant, Feature.VIDEO_STREAMING)
        assert trips.database == 10 * per_read

        trips.reset()
        for _ in range(10):
            assert await cached.flags.is_enabled(tenant, Feature.VIDEO_STREAMING)
        assert trips.database == per_read  # loads all the tenant's flags in one query
        clock.now += TTL_S - 1
        assert await cached.flags.is_enabled(tenant, Feature.CUSTOM_SCRIPTING) is False
        assert trips.database == per_read
        clock.now += 1  # the TTL has passed
        assert await cached.flags.is_enabled(tenant, Feature.VIDEO_STREAMING)
        assert trips.database == 2 * per_read
    finally:
        trips.close()


async def test_each_evaluation_records_a_span_event(instance: Instance) -> None:
    tenant = uuid.uuid4()
    await instance.store.set(tenant, Feature.COMMERCE, enabled=True, variant="beta")
    provider, exporter = telemetry.in_memory_tracing()
    with provider.get_tracer("test").start_as_current_span("request"):
        await instance.flags.is_enabled(tenant, Feature.COMMERCE)
        await instance.flags.is_enabled(tenant, Feature.BLOG)
    (span,) = exporter.get_finished_spans()
    assert [event.name for event in span.events] == [EVALUATION_EVENT, EVALUATION_EVENT]
    first, second = (dict(event.attributes or {}) for event in span.events)
    assert first["feature_flag.key"] == "commerce"
    assert first["feature_flag.provider.name"] == "rustok-ref"
    assert first["feature_flag.context.id"] == str(tenant)
    assert first["tenant.id"] == str(tenant)
    assert (first["feature_flag.result.value"], first["feature_flag.result.variant"]) == (
        True,
        "beta",
    )
    assert first["feature_flag.result.reason"] == "targeting_match"
    assert (second["feature_flag.key"], second["feature_flag.result.value"]) == ("blog", False)
    assert second["feature_flag.result.reason"] == "default"
