"""Memory per cached tenant (issue 10): the RSS a fresh process grows by holding 10k and
100k tenants in a TenantCache, against a dict holding the same objects. Under
`--benchmark-disable` one small size runs for each container and nothing is recorded."""

from __future__ import annotations

import pytest

from rustok_ref.lab import memory


@pytest.mark.parametrize("container", memory.CONTAINERS)
def test_memory_per_cached_tenant(bench_record, container: memory.Container) -> None:
    for tenants in (10_000, 100_000) if bench_record.enabled else (10_000,):
        point = memory.measure(container, tenants)
        assert point.tenants == tenants
        assert point.rss_built > point.rss_start  # the tenants were built before the insert
        bench_record.memory(point)
