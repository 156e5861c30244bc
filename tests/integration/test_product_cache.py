"""The product cache over the real Redis: the TTL on an injected clock, local and remote
invalidation (two caches standing for two API processes), a load an invalidation overtook,
tenant keying, and what the listener ignores."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
import redis.asyncio as aioredis

from rustok_ref.commerce.money import Money
from rustok_ref.commerce.product_cache import ProductCache
from rustok_ref.commerce.products import ProductRecord
from rustok_ref.commerce.states import ProductStatus
from rustok_ref.config import Settings
from rustok_ref.errors import NotFoundError
from rustok_ref.lab import infra
from rustok_ref.resilience import ResilientRedisCache
from rustok_ref.resilience.invalidation import InvalidationListener

pytestmark = pytest.mark.integration

T = TypeVar("T")

TTL_S = 2.0  # on the fake clock
LIVENESS_S = 20.0  # far above any Redis round trip here


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Database:
    """Stands for the products table: the record each load returns, and the loads made."""

    def __init__(self, record: ProductRecord) -> None:
        self.record = record
        self.loads = 0

    async def load(self) -> ProductRecord:
        self.loads += 1
        return self.record

    def rename(self, title: str) -> None:
        self.record = dataclasses.replace(self.record, title=title, version=self.record.version + 1)


def a_product(tenant_id: uuid.UUID) -> ProductRecord:
    now = datetime.now(UTC)
    return ProductRecord(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        sku="sku-1",
        title="Kettle",
        price=Money(2599, "EUR"),
        stock=5,
        status=ProductStatus.DRAFT,
        version=1,
        created_at=now,
        updated_at=now,
    )


async def within(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, LIVENESS_S)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(redis_client: aioredis.Redis, run_ns: infra.RunNamespace) -> ResilientRedisCache:
    return ResilientRedisCache(redis_client, f"{run_ns.redis_prefix}pc-{uuid.uuid4().hex[:8]}:")


@pytest.fixture
def db() -> Database:
    return Database(a_product(uuid.uuid4()))


@pytest.fixture
def here(backend: ResilientRedisCache, clock: FakeClock) -> ProductCache:
    return ProductCache(backend, ttl_s=TTL_S, clock=clock)


@dataclasses.dataclass
class Process:
    cache: ProductCache
    listener: InvalidationListener


@pytest.fixture
async def there(
    backend: ResilientRedisCache, clock: FakeClock, redis_client: aioredis.Redis
) -> AsyncIterator[Process]:
    """Another process's cache on the same channel, its listener subscribed."""
    cache = ProductCache(backend, ttl_s=TTL_S, clock=clock)
    async with cache.listener(redis_client) as listener:
        await within(listener.wait_subscribed())
        yield Process(cache, listener)


async def test_a_read_is_served_from_memory_until_the_ttl(
    here: ProductCache, db: Database, clock: FakeClock
) -> None:
    record = db.record
    assert await here.get(record.tenant_id, record.id, db.load) == record
    db.rename("Teapot")
    clock.now = TTL_S - 0.01
    assert (await here.get(record.tenant_id, record.id, db.load)).title == "Kettle"
    clock.now = TTL_S
    assert (await here.get(record.tenant_id, record.id, db.load)).title == "Teapot"
    assert (db.loads, here.hits, here.misses, here.size()) == (2, 1, 2, 1)


async def test_a_change_is_read_at_once_here(here: ProductCache, db: Database) -> None:
    record = db.record
    await here.get(record.tenant_id, record.id, db.load)
    db.rename("Teapot")
    await here.changed(record.tenant_id, record.id)
    assert (await here.get(record.tenant_id, record.id, db.load)).title == "Teapot"


async def test_a_change_reaches_the_other_process_over_redis(
    here: ProductCache, there: Process, db: Database
) -> None:
    record = db.record
    await there.cache.get(record.tenant_id, record.id, db.load)
    db.rename("Teapot")
    await here.changed(record.tenant_id, record.id)
    await within(there.listener.wait_messages(1))
    assert (await there.cache.get(record.tenant_id, record.id, db.load)).title == "Teapot"


async def test_a_load_an_invalidation_overtook_is_not_kept(
    here: ProductCache, db: Database
) -> None:
    record = db.record
    loaded, release = asyncio.Event(), asyncio.Event()

    async def slow_load() -> ProductRecord:
        stale = await db.load()
        loaded.set()
        await release.wait()
        return stale

    read = asyncio.create_task(here.get(record.tenant_id, record.id, slow_load))
    await within(loaded.wait())
    db.rename("Teapot")
    await here.changed(record.tenant_id, record.id)
    release.set()
    assert (await within(read)).title == "Kettle"  # served once to the read that made it
    assert (await here.get(record.tenant_id, record.id, db.load)).title == "Teapot"
    assert db.loads == 2


async def test_entries_are_per_tenant(here: ProductCache, db: Database) -> None:
    record = db.record
    await here.get(record.tenant_id, record.id, db.load)
    other_tenant = uuid.uuid4()

    async def not_theirs() -> ProductRecord:
        raise NotFoundError(f"product {record.id} not found")

    for _ in range(2):  # a not-found is never cached
        with pytest.raises(NotFoundError):
            await here.get(other_tenant, record.id, not_theirs)
    assert here.misses == 3


async def test_a_malformed_message_is_ignored(
    there: Process, db: Database, redis_client: aioredis.Redis
) -> None:
    record = db.record
    await there.cache.get(record.tenant_id, record.id, db.load)
    for bad in (b"nonsense", str(record.tenant_id).encode(), b"\xff\xfe"):
        await redis_client.publish(there.cache.channel, bad)
    await redis_client.publish(there.cache.channel, f"{uuid.uuid4()} {uuid.uuid4()}")
    await within(there.listener.wait_messages(1))
    assert there.listener.malformed == 3
    await there.cache.get(record.tenant_id, record.id, db.load)
    assert db.loads == 1, "no message named this product"


async def test_a_resubscription_drops_everything(
    here: ProductCache, db: Database, redis_client: aioredis.Redis, app_settings: Settings
) -> None:
    """Only this test's listener connection is cut (found by its name): Redis is shared."""
    record = db.record
    await here.get(record.tenant_id, record.id, db.load)
    name = f"pc-listener-{uuid.uuid4().hex[:8]}"
    assert app_settings.redis_url is not None
    own = aioredis.Redis.from_url(app_settings.redis_url, client_name=name)
    async with here.listener(own) as listener:
        await within(listener.wait_subscribed())
        ids = [c["id"] for c in await redis_client.client_list() if c["name"] == name]
        assert ids
        for client_id in ids:
            await redis_client.client_kill_filter(_id=client_id)
        await within(listener.wait_subscribed(2))  # redis-py reconnected and re-subscribed
    await own.aclose()
    await here.get(record.tenant_id, record.id, db.load)
    assert db.loads == 2, "a message may have been missed while disconnected"
