"""The scale curves measure what they name, at every size asked for."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from rustok_ref.lab import infra, scale


def xs(curve) -> list[float]:
    return [point.x for point in curve.points]


def test_tenants_are_distinct_and_keyed_by_slug() -> None:
    tenants = scale.make_tenants(50)
    assert len({tenant.id for tenant in tenants.values()}) == 50
    assert all(key.value == tenant.slug for key, tenant in tenants.items())


def test_tenant_cache_hits_beside_a_raw_moka_get() -> None:
    ours, raw = scale.tenant_cache_hits([10, 300], rounds=2)
    assert xs(ours) == xs(raw) == [10, 300]
    assert all(p.seconds_per_op.min <= p.seconds_per_op.median <= p.seconds_per_op.max
               for p in ours.points)  # fmt: skip


async def test_concurrent_callers_coalesce_into_one_load_per_key() -> None:
    curve = await scale.concurrent_callers([1, 5, 40], keys=5, rounds=2)
    assert xs(curve) == [1, 5, 40]


async def test_queue_capacity_and_event_rate_curves() -> None:
    capacity = await scale.queue_capacity([1, 50], items=100, rounds=2)
    rate = await scale.event_rate([500.0], duration_s=0.02, rounds=1)
    assert xs(capacity) == [1, 50] and xs(rate) == [500.0]
    assert rate.points[0].seconds_per_op.median > 0


@pytest.mark.integration
async def test_cached_keys_are_hit_remotely_and_cleaned_up(
    redis_client: aioredis.Redis, run_ns: infra.RunNamespace
) -> None:
    prefix = f"{run_ns.redis_prefix}scale-{uuid.uuid4().hex[:8]}:"
    curve = await scale.resilient_cache_keys(redis_client, prefix, [10, 100], rounds=1)
    assert xs(curve) == [10, 100]
    assert not await redis_client.keys(f"{prefix}*")
