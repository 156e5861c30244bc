"""Flag evaluation: a warm cache against OpenFeature's in-memory provider holding an
equivalent per-tenant flag (both behind the SDK client, and ours without it), and against the
review's `cache=False` sketch, which reads the database on every call (informational)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.features import Feature, FeatureFlagProvider, FeatureFlags, FlagCache, FlagStore

pytestmark = pytest.mark.integration

OURS, PEER = "rustok", "in-memory"


@pytest.fixture
async def tenant(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    await FlagStore(sessions).set(tenant_id, Feature.COMMERCE, enabled=True)
    return tenant_id


@pytest.fixture
def store(sessions: async_sessionmaker[AsyncSession]) -> FlagStore:
    return FlagStore(sessions)


def in_memory_provider(tenant: uuid.UUID) -> InMemoryProvider:
    """The same flag in OpenFeature's provider: on for this tenant only."""

    def for_tenant(
        flag: InMemoryFlag[bool], context: EvaluationContext
    ) -> FlagResolutionDetails[bool]:
        on = context.targeting_key == str(tenant)
        return FlagResolutionDetails(
            value=flag.variants["on" if on else "off"],
            reason=Reason.TARGETING_MATCH,
            variant="on" if on else "off",
        )

    flag = InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=for_tenant)
    return InMemoryProvider({Feature.COMMERCE.value: flag})


@pytest.fixture
def clients(store: FlagStore, tenant: uuid.UUID) -> Iterator[tuple[OpenFeatureClient, ...]]:
    api.set_provider(FeatureFlagProvider(FeatureFlags(store, cache=FlagCache())), domain=OURS)
    api.set_provider(in_memory_provider(tenant), domain=PEER)
    yield api.get_client(OURS), api.get_client(PEER)
    api.clear_providers()


async def test_warm_cache_against_the_in_memory_provider_behind_the_sdk(
    paired, clients: tuple[OpenFeatureClient, OpenFeatureClient], tenant: uuid.UUID
) -> None:
    ours, peer = clients
    context = EvaluationContext(targeting_key=str(tenant))
    key = Feature.COMMERCE.value
    assert await ours.get_boolean_value_async(key, False, context)  # warms the cache
    assert await peer.get_boolean_value_async(key, False, context)
    await paired.async_(
        partial(ours.get_boolean_value_async, key, False, context),
        partial(peer.get_boolean_value_async, key, False, context),
        labels=("SDK client, our provider, warm cache", "SDK client, InMemoryProvider"),
        iterations=1000,
    )


async def test_warm_is_enabled_against_the_in_memory_provider(
    paired, store: FlagStore, tenant: uuid.UUID
) -> None:
    flags = FeatureFlags(store, cache=FlagCache())
    provider = in_memory_provider(tenant)
    context = EvaluationContext(targeting_key=str(tenant))
    assert await flags.is_enabled(tenant, Feature.COMMERCE)

    async def in_memory() -> bool:
        return provider.resolve_boolean_details(Feature.COMMERCE.value, False, context).value

    assert await in_memory()
    await paired.async_(
        partial(flags.is_enabled, tenant, Feature.COMMERCE),
        in_memory,
        labels=("FeatureFlags.is_enabled, warm cache", "InMemoryProvider.resolve, no SDK"),
        iterations=2000,
    )


async def test_warm_cache_against_the_sketch(paired, store: FlagStore, tenant: uuid.UUID) -> None:
    cached = FeatureFlags(store, cache=FlagCache())
    sketch = FeatureFlags(store, cache=False)
    assert await cached.is_enabled(tenant, Feature.COMMERCE)
    await paired.async_(
        partial(cached.is_enabled, tenant, Feature.COMMERCE),
        partial(sketch.is_enabled, tenant, Feature.COMMERCE),
        labels=("is_enabled, warm cache", "is_enabled, cache=False (the review's sketch)"),
        rounds=9,
        iterations=50,
    )
