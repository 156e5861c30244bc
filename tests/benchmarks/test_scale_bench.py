"""Scale curves (issue 10): cost per operation as tenants, cached keys, concurrent callers,
queue capacity and the offered event rate grow over decades, recorded in the run's JSON for
the performance report's log-log plots. Under `--benchmark-disable` each curve runs at two
tiny sizes and records nothing, so the code cannot rot and `make test` stays fast."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from rustok_ref.lab import infra, scale
from rustok_ref.lab.benchrecord import ScaleCurve

DECADES = (10, 100, 1_000, 10_000, 100_000)
SMOKE = (10, 100)


def sizes(bench_record) -> tuple[int, ...]:
    return DECADES if bench_record.enabled else SMOKE


def rounds(bench_record) -> int:
    return 7 if bench_record.enabled else 1


def assert_filled(curve: ScaleCurve, expected: tuple[float, ...]) -> None:
    assert tuple(point.x for point in curve.points) == expected
    assert all(point.seconds_per_op.min > 0 for point in curve.points)


def test_tenant_cache_hit_as_tenants_grow(bench_record) -> None:
    expected = sizes(bench_record)
    for curve in scale.tenant_cache_hits(expected, rounds=rounds(bench_record)):
        assert_filled(curve, expected)
        bench_record.curve(curve)


@pytest.mark.integration
async def test_resilient_cache_get_as_cached_keys_grow(
    bench_record, redis_client: aioredis.Redis, run_ns: infra.RunNamespace
) -> None:
    expected = sizes(bench_record)
    prefix = f"{run_ns.redis_prefix}bench-{uuid.uuid4().hex[:8]}:"
    curve = await scale.resilient_cache_keys(
        redis_client, prefix, expected, rounds=rounds(bench_record)
    )
    assert_filled(curve, expected)
    assert not await redis_client.keys(f"{prefix}*")
    bench_record.curve(curve)


async def test_cold_lookups_as_concurrent_callers_grow(bench_record) -> None:
    expected = (1, *sizes(bench_record)[:-1]) if bench_record.enabled else (1, 10)
    curve = await scale.concurrent_callers(expected, keys=10, rounds=rounds(bench_record))
    assert_filled(curve, expected)
    bench_record.curve(curve)


async def test_dispatcher_cost_as_queue_capacity_grows(bench_record) -> None:
    expected = (1, *sizes(bench_record)[:-1]) if bench_record.enabled else (1, 10)
    items = 2_000 if bench_record.enabled else 50
    curve = await scale.queue_capacity(expected, items=items, rounds=rounds(bench_record))
    assert_filled(curve, expected)
    bench_record.curve(curve)


async def test_dispatcher_cpu_per_event_as_the_rate_grows(bench_record) -> None:
    expected = (100.0, 1_000.0, 10_000.0, 100_000.0) if bench_record.enabled else (1_000.0,)
    duration = 0.5 if bench_record.enabled else 0.02
    curve = await scale.event_rate(
        expected, duration_s=duration, rounds=min(rounds(bench_record), 3)
    )
    assert_filled(curve, expected)
    bench_record.curve(curve)
