"""The feature flag experiment: its pure helpers, and its measurements on the real database
and Redis at small sizes (integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rustok_ref.features import Feature
from rustok_ref.lab import infra
from rustok_ref.lab.experiments import flags as fx


def test_tenant_ids_are_seeded_and_distinct() -> None:
    ids = fx.tenant_ids(50, seed=3)
    assert ids == fx.tenant_ids(50, seed=3)
    assert len(set(ids)) == 50
    assert all(tenant.version == 4 for tenant in ids)


def test_rollout_is_sticky_and_near_its_target() -> None:
    percentages = [0, 10, 25, 50, 75, 100]
    matrix = fx.rollout_matrix(fx.tenant_ids(2_000, seed=1), Feature.BLOG, percentages)
    shares = fx.rollout_shares(matrix)
    assert shares[0] == 0 and shares[-1] == 100
    assert all(abs(share - p) < 5 for share, p in zip(shares, percentages, strict=True))
    assert fx.rollout_losses(matrix) == [0] * (len(percentages) - 1)


def test_rollout_losses_and_changed_cells_count_differences() -> None:
    assert fx.rollout_losses([[True, False], [False, True]]) == [1]
    assert fx.rollout_losses([]) == []
    before = [[True, False], [False, False]]
    assert fx.changed_cells(before, [[True, True], [False, False]]) == [(0, 1)]
    assert fx.changed_cells(before, before) == []


@pytest.fixture
async def lab(run_ns: infra.RunNamespace) -> AsyncIterator[fx.Lab]:
    opened = await fx.Lab.open(run_ns.database_url, run_ns.redis_url, run_ns.redis_prefix)
    yield opened
    await opened.close()


@pytest.mark.integration
async def test_a_flip_changes_one_cell_of_the_warm_matrix(lab: fx.Lab) -> None:
    tenants = fx.tenant_ids(4, seed=11)
    await lab.seed_flags(tenants, seed=11)
    before, after = await lab.flip(tenants, tenants[2], Feature.FORUM)
    assert fx.changed_cells(before, after) == [(2, fx.FEATURES.index(Feature.FORUM))]


@pytest.mark.integration
async def test_the_sketch_reads_the_database_and_the_warm_cache_does_not(lab: fx.Lab) -> None:
    tenant = fx.tenant_ids(1, seed=12)[0]
    await lab.store.set(tenant, Feature.PAGES, enabled=True)
    seconds, cached = await lab.latencies(lab.cached, tenant, Feature.PAGES, 20)
    assert len(seconds) == 20
    assert cached == 0
    _, uncached = await lab.latencies(lab.uncached, tenant, Feature.PAGES, 20)
    assert uncached >= 1


@pytest.mark.integration
async def test_require_refuses_every_disabled_feature(lab: fx.Lab) -> None:
    tenants = fx.tenant_ids(3, seed=13)
    await lab.seed_flags(tenants, seed=13)
    assert await lab.refused_share(lab.cached, tenants) == 100
    assert await lab.refused_share(lab.uncached, tenants) == 100
