"""The round-trip counter counts what the client sends, and the unit of work's set-up is one."""

from __future__ import annotations

import uuid

import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.lab import infra
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.storage import UnitOfWork, tenants

pytestmark = pytest.mark.integration


async def test_unit_of_work_sets_role_and_tenant_in_one_round_trip(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    trips = RoundTrips()
    trips.watch_engine(engine)
    async with UnitOfWork(sessions, tenant_id=uuid.uuid4()) as uow:
        assert trips.database == 1
        await uow.session.execute(select(tenants.c.id))
        assert trips.database == 2
    trips.close()
    async with sessions() as session:
        await session.execute(select(tenants.c.id))
    assert trips.database == 2, "closed counters stop counting"


def test_sync_redis_counts_one_per_command_and_one_per_pipeline(
    run_ns: infra.RunNamespace,
) -> None:
    client = redis.Redis.from_url(run_ns.redis_url)
    trips = RoundTrips()
    trips.watch_redis(client)
    client.set(run_ns.redis_prefix + "rt", 1)
    client.get(run_ns.redis_prefix + "rt")
    assert trips.redis == 2
    pipe = client.pipeline(transaction=False)
    for i in range(10):
        pipe.incr(run_ns.redis_prefix + f"rt{i}")
    pipe.execute()
    assert trips.redis == 3
    assert trips.redis_connects == 1
    client.close()


async def test_async_redis_counts_one_per_command_and_one_per_pipeline(
    run_ns: infra.RunNamespace,
) -> None:
    client = aioredis.Redis.from_url(run_ns.redis_url)
    trips = RoundTrips()
    trips.watch_redis(client)
    await client.set(run_ns.redis_prefix + "art", 1)
    async with client.pipeline(transaction=True) as pipe:
        for i in range(5):
            pipe.incr(run_ns.redis_prefix + f"art{i}")
        await pipe.execute()
    assert trips.redis == 2
    assert trips.redis_connects == 1
    await client.aclose()
