"""Two instances on one Redis, as two processes would be: each its own cache and listener on
the run's channel. The first makes changes through the repository; the second is only ever
read from. A listener cut off from Redis (by the fault proxy) drops its whole cache once it
is subscribed again, since it may have missed messages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.lab import infra
from rustok_ref.lab.faults import FaultProxy
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.cache_api import TenantCacheAPI
from rustok_ref.tenancy.cache_v1 import HandWrittenTenantCache
from rustok_ref.tenancy.invalidation import InvalidationListener, RedisInvalidationPublisher
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier
from rustok_ref.tenancy.repository import TenantRepository, load_tenant

pytestmark = pytest.mark.integration

LIVENESS_S = 60.0  # far above the reconnect delay (0.05 s) and redis-py's retry back-off
RECONNECT_DELAY_S = 0.05


class Loads:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.calls = 0

    async def __call__(self, identifier: TenantIdentifier) -> Tenant | None:
        self.calls += 1
        return await load_tenant(self.sessions, identifier)


@dataclass
class Instance:
    cache: TenantCacheAPI
    loads: Loads
    listener: InvalidationListener

    async def get(self, identifier: TenantIdentifier) -> Tenant | None:
        return await self.cache.get_or_load(identifier)


def slug(value: str) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.SLUG, value)


def uuid_of(tenant: Tenant) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.UUID, str(tenant.id))


def new_slug(label: str = "t") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


async def within(awaitable: Awaitable[object]) -> None:
    await asyncio.wait_for(awaitable, LIVENESS_S)


@pytest.fixture
def prefix(run_ns: infra.RunNamespace) -> str:
    """A channel of this test's own, inside the run's prefix."""
    return f"{run_ns.redis_prefix}inv-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def first(
    sessions: async_sessionmaker[AsyncSession], redis_client: aioredis.Redis, prefix: str
) -> AsyncIterator[Instance]:
    loads = Loads(sessions)
    cache = TenantCache(loads)
    async with InvalidationListener(redis_client, prefix, cache) as listener:
        await within(listener.wait_subscribed())
        yield Instance(cache, loads, listener)


@pytest.fixture
async def second(
    sessions: async_sessionmaker[AsyncSession], run_ns: infra.RunNamespace, prefix: str
) -> AsyncIterator[Instance]:
    client = aioredis.Redis.from_url(run_ns.redis_url)  # a process of its own: its own client
    loads = Loads(sessions)
    cache = TenantCache(loads)
    async with InvalidationListener(client, prefix, cache) as listener:
        await within(listener.wait_subscribed())
        yield Instance(cache, loads, listener)
    await client.aclose()


@pytest.fixture
def repository(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
    first: Instance,
) -> TenantRepository:
    """Changes go through the first instance, which invalidates its own cache at once."""
    publisher = RedisInvalidationPublisher(redis_client, prefix, local=first.cache)
    return TenantRepository(sessions, publisher)


async def test_a_rename_on_the_first_is_seen_by_the_second(
    repository: TenantRepository, first: Instance, second: Instance
) -> None:
    created = await repository.create(new_slug(), "Acme")
    await within(second.listener.wait_messages(1))
    assert await second.get(slug(created.slug)) == created
    assert await second.get(uuid_of(created)) == created
    assert second.loads.calls == 2
    renamed = await repository.rename(created.id, new_slug("r"))
    assert await first.get(uuid_of(created)) == renamed, "the first reads its own write at once"
    await within(second.listener.wait_messages(2))
    assert await second.get(uuid_of(created)) == renamed
    assert await second.get(slug(created.slug)) is None
    assert await second.get(slug(renamed.slug)) == renamed
    assert second.loads.calls == 5


@pytest.mark.parametrize("variant", ["recommended", "v1"])
async def test_a_load_held_across_the_invalidation_does_not_store_the_stale_row(
    variant: str,
    repository: TenantRepository,
    sessions: async_sessionmaker[AsyncSession],
    run_ns: infra.RunNamespace,
    prefix: str,
) -> None:
    """The second instance's load reads the row, then waits on an event while the first
    renames and the second's listener applies the invalidation. The recommended cache does
    not store what that load read; v1 does, and serves it until its TTL."""
    created = await repository.create(new_slug(), "Acme")
    read, release = asyncio.Event(), asyncio.Event()
    loads = Loads(sessions)

    async def held(identifier: TenantIdentifier) -> Tenant | None:
        found = await loads(identifier)
        if loads.calls == 1:
            read.set()
            await release.wait()
        return found

    cache: TenantCacheAPI = (
        TenantCache(held) if variant == "recommended" else HandWrittenTenantCache(held)
    )
    client = aioredis.Redis.from_url(run_ns.redis_url)
    async with InvalidationListener(client, prefix, cache) as listener:
        await within(listener.wait_subscribed())
        loading = asyncio.create_task(cache.get_or_load(uuid_of(created)))
        await within(read.wait())
        renamed = await repository.rename(created.id, new_slug("r"))
        await within(listener.wait_messages(1))
        release.set()
        assert await loading == created
        after = await cache.get_or_load(uuid_of(created))
    await client.aclose()
    if variant == "recommended":
        assert (after, loads.calls) == (renamed, 2)
    else:
        assert (after, loads.calls) == (created, 1)


@pytest.fixture
def redis_proxy(run_ns: infra.RunNamespace) -> Iterator[FaultProxy]:
    upstream = urlsplit(run_ns.redis_url)
    assert upstream.hostname is not None and upstream.port is not None
    with FaultProxy("redis", (upstream.hostname, upstream.port)) as proxy:
        yield proxy


@pytest.mark.parametrize(
    "retries",
    # redis-py reconnects and re-subscribes on its own; without retries the listener does.
    [None, 0],
    ids=["redis-py-reconnects", "listener-reconnects"],
)
async def test_a_listener_cut_off_from_redis_drops_its_cache_when_it_is_back(
    retries: int | None,
    repository: TenantRepository,
    sessions: async_sessionmaker[AsyncSession],
    redis_proxy: FaultProxy,
    prefix: str,
) -> None:
    created = await repository.create(new_slug(), "Acme")
    loads = Loads(sessions)
    cache = TenantCache(loads)
    client = (
        aioredis.Redis(host="127.0.0.1", port=redis_proxy.port)
        if retries is None
        else aioredis.Redis(
            host="127.0.0.1", port=redis_proxy.port, retry=Retry(NoBackoff(), retries)
        )
    )
    listener = InvalidationListener(client, prefix, cache, reconnect_delay=RECONNECT_DELAY_S)
    async with listener:
        await within(listener.wait_subscribed())
        assert await cache.get_or_load(uuid_of(created)) == created
        redis_proxy.disable()
        renamed = await repository.rename(created.id, new_slug("r"))  # the listener misses it
        assert await cache.get_or_load(uuid_of(created)) == created, "stale while cut off"
        redis_proxy.enable()
        await within(listener.wait_subscribed(2))
        assert listener.messages == 0, "the rename's message was lost"
        assert await cache.get_or_load(uuid_of(created)) == renamed
    await client.aclose()
    assert loads.calls == 2
    assert redis_proxy.stats().dropped >= 1
    if retries == 0:
        assert listener.failures >= 1


async def test_a_malformed_message_is_ignored(
    redis_client: aioredis.Redis, prefix: str, first: Instance
) -> None:
    await redis_client.publish(first.listener.channel, b"tenant:v1:slug:acme|tenant_negative")
    await redis_client.publish(first.listener.channel, b"[]")
    await within(first.listener.wait_messages(1))
    assert first.listener.malformed == 1


async def test_a_listener_starts_once(redis_client: aioredis.Redis, prefix: str) -> None:
    listener = InvalidationListener(redis_client, prefix, TenantCache())
    await listener.stop()  # not started: nothing to stop
    async with listener:
        with pytest.raises(RuntimeError, match="already running"):
            listener.start()
