"""The tenant caches' hit path against a raw moka-py get (what the wrapper costs) and against
cachetools' TTLCache behind a lock (the usual Python peer), and their miss path's database
round trips: one load per key, however many callers."""

from __future__ import annotations

import asyncio
import threading
import uuid
from functools import partial

import pytest
import redis.asyncio as aioredis
from cachetools import TTLCache
from moka_py import Moka
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.lab import infra
from rustok_ref.lab.benchrecord import Target
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.cache_api import TenantCacheAPI
from rustok_ref.tenancy.cache_v1 import HandWrittenTenantCache
from rustok_ref.tenancy.invalidation import RedisInvalidationPublisher
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier
from rustok_ref.tenancy.repository import TenantRepository, load_tenant

pytestmark = pytest.mark.integration

STATEMENTS_PER_LOAD = 2  # the unit of work's role set-up, then the SELECT


@pytest.fixture
async def tenant(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    run_ns: infra.RunNamespace,
) -> Tenant:
    publisher = RedisInvalidationPublisher(redis_client, run_ns.redis_prefix)
    slug = f"b-{uuid.uuid4().hex[:12]}"
    return await TenantRepository(sessions, publisher).create(slug, "Bench")


def slug_of(tenant: Tenant) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.SLUG, tenant.slug)


def raw_moka(identifier: TenantIdentifier, tenant: Tenant) -> Moka[TenantIdentifier, Tenant]:
    """A bare moka-py cache holding the same entry, keyed the same way."""
    raw: Moka[TenantIdentifier, Tenant] = Moka(10_000, ttl=330.0, tti=198.0)
    raw.set(identifier, tenant)
    return raw


def variant(
    name: str, sessions: async_sessionmaker[AsyncSession], redis: aioredis.Redis | None, prefix: str
) -> TenantCacheAPI:
    loader = partial(load_tenant, sessions)
    if name == "recommended":
        return TenantCache(loader)
    if name == "sketch":
        return TenantCache(loader, negative_ttl=None)
    return HandWrittenTenantCache(loader, redis=redis, redis_prefix=prefix)


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("recommended", Target(value=1.5)),
        ("sketch", None),
        ("v1", None),
        ("v1+redis-metrics", None),  # two INCR round trips per hit
    ],
)
async def test_async_hit_against_a_raw_moka_get(
    paired,
    name: str,
    target: Target | None,
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    run_ns: infra.RunNamespace,
    tenant: Tenant,
) -> None:
    identifier = slug_of(tenant)
    redis = redis_client if name.endswith("redis-metrics") else None
    prefix = f"{run_ns.redis_prefix}bench-{uuid.uuid4().hex[:8]}:"
    cache = variant(name.split("+")[0], sessions, redis, prefix)
    assert await cache.get_or_load(identifier) == tenant
    raw = raw_moka(identifier, tenant)

    async def raw_get() -> Tenant | None:
        return raw.get(identifier)

    slow = redis is not None
    await paired.async_(
        partial(cache.get_or_load, identifier),
        raw_get,
        labels=(f"{name} get_or_load hit", "async def returning a raw moka-py get"),
        target=target,
        rounds=9 if slow else 25,
        iterations=20 if slow else 2000,
    )


@pytest.mark.parametrize(("name", "target"), [("recommended", Target(value=2.0)), ("v1", None)])
async def test_sync_hit_against_a_raw_moka_get(
    paired,
    name: str,
    target: Target | None,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    identifier = slug_of(tenant)
    cache = variant(name, sessions, None, "")
    await cache.get_or_load(identifier)  # warms the entry the sync path reads
    raw = raw_moka(identifier, tenant)
    paired.sync(
        partial(cache.get_or_load_sync, identifier),
        partial(raw.get, identifier),
        labels=(f"{name} get_or_load_sync hit", "raw moka-py get"),
        target=target,
        iterations=5000,
    )


async def test_sync_hit_against_cachetools_ttlcache_with_a_lock(
    paired, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    identifier = slug_of(tenant)
    cache = TenantCache(partial(load_tenant, sessions))
    await cache.get_or_load(identifier)
    peer: TTLCache[TenantIdentifier, Tenant] = TTLCache(maxsize=10_000, ttl=300.0)
    peer[identifier] = tenant
    lock = threading.Lock()

    def peer_get() -> Tenant | None:
        with lock:
            return peer.get(identifier)

    paired.sync(
        partial(cache.get_or_load_sync, identifier),
        peer_get,
        labels=("TenantCache get_or_load_sync hit", "cachetools TTLCache + threading.Lock"),
        target=Target(value=1.0),
        iterations=5000,
    )


@pytest.mark.parametrize("name", ["recommended", "sketch", "v1"])
async def test_a_miss_costs_one_load_per_key_however_many_callers(
    name: str,
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    redis_client: aioredis.Redis,
    run_ns: infra.RunNamespace,
) -> None:
    publisher = RedisInvalidationPublisher(redis_client, run_ns.redis_prefix)
    repository = TenantRepository(sessions, publisher)
    keys = [
        slug_of(await repository.create(f"m-{uuid.uuid4().hex[:12]}", "Miss")) for _ in range(10)
    ]
    cache = variant(name, sessions, None, "")
    trips = RoundTrips()
    trips.watch_engine(engine)
    results = await asyncio.gather(*(cache.get_or_load(key) for key in keys for _ in range(100)))
    trips.close()
    assert all(result is not None for result in results)
    assert cache.stats().load_success_count == len(keys)
    assert trips.database == STATEMENTS_PER_LOAD * len(keys)
