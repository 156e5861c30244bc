"""T3.require-guard through the GraphQL field guard (integration: the real flag service)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rustok_ref.api.graphql.permissions import RequireFeature
from rustok_ref.features import Feature
from rustok_ref.lab import infra
from rustok_ref.lab.experiments import flags as fx

pytestmark = pytest.mark.integration


@pytest.fixture
async def lab(run_ns: infra.RunNamespace) -> AsyncIterator[fx.Lab]:
    opened = await fx.Lab.open(run_ns.database_url, run_ns.redis_url, run_ns.redis_prefix)
    yield opened
    await opened.close()


async def test_the_graphql_guard_refuses_every_disabled_feature(lab: fx.Lab) -> None:
    tenants = fx.tenant_ids(3, seed=31)
    await lab.seed_flags(tenants, seed=31)
    assert await lab.refused_share(lab.cached, tenants, through_guard=True) == 100
    assert await lab.refused_share(lab.uncached, tenants, through_guard=True) == 100


async def test_the_guard_lets_an_enabled_feature_through(lab: fx.Lab) -> None:
    tenant = fx.tenant_ids(1, seed=32)[0]
    await lab.store.set(tenant, Feature.COMMERCE, enabled=True)
    guard = RequireFeature(Feature.COMMERCE)
    assert await guard.has_permission(None, fx.guard_info(lab.cached, tenant))
