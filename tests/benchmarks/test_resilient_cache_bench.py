"""What the resilient cache adds to a Redis read that hits: the breaker, the per-call timeout
and the local copy's refresh, against a raw redis-py asyncio GET of the same key on the same
client, timed in the same rounds (aim: at most 1.2x)."""

from __future__ import annotations

import uuid
from functools import partial

import pytest
import redis.asyncio as aioredis

from rustok_ref.lab import infra
from rustok_ref.lab.benchrecord import Target
from rustok_ref.resilience import CircuitState, ResilientRedisCache

pytestmark = pytest.mark.integration


async def test_a_resilient_hit_against_a_raw_redis_get(
    paired, redis_client: aioredis.Redis, run_ns: infra.RunNamespace
) -> None:
    prefix = f"{run_ns.redis_prefix}bench-{uuid.uuid4().hex[:8]}:"
    cache = ResilientRedisCache(redis_client, prefix)
    await cache.set("tenant", b"x" * 200, ttl_s=600)
    assert await cache.get("tenant") == await redis_client.get(prefix + "tenant")

    await paired.async_(
        partial(cache.get, "tenant"),
        partial(redis_client.get, prefix + "tenant"),
        labels=("ResilientRedisCache.get, remote hit", "redis-py asyncio GET"),
        target=Target(value=1.2),
        rounds=25,
        iterations=200,
    )
    stats = cache.stats()
    assert stats.fallbacks == stats.errors == 0
    assert stats.breaker is CircuitState.CLOSED
    await redis_client.delete(prefix + "tenant")
