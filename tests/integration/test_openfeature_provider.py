"""The feature flags through the real OpenFeature SDK client: the tenant is the targeting
key; reasons, variants and error codes are OpenFeature's. Provider registration is global in
the SDK, so every test clears it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import ErrorCode, Reason
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.features import (
    Feature,
    FeatureFlagProvider,
    FeatureFlags,
    FlagCache,
    FlagStore,
    in_rollout,
)

pytestmark = pytest.mark.integration

DOMAIN = "tenants"


@pytest.fixture
def store(sessions: async_sessionmaker[AsyncSession]) -> FlagStore:
    return FlagStore(sessions)  # one instance: the cache is left to its TTL


@pytest.fixture
def client(store: FlagStore) -> Iterator[OpenFeatureClient]:
    api.set_provider(FeatureFlagProvider(FeatureFlags(store, cache=False)), domain=DOMAIN)
    yield api.get_client(DOMAIN)
    api.clear_providers()
    api.clear_evaluation_context()


def tenant_context(tenant: uuid.UUID) -> EvaluationContext:
    return EvaluationContext(targeting_key=str(tenant))


async def test_the_tenant_is_the_targeting_key(store: FlagStore, client: OpenFeatureClient) -> None:
    acme, globex = uuid.uuid4(), uuid.uuid4()
    await store.set(acme, Feature.COMMERCE, enabled=True)
    await store.set(globex, Feature.COMMERCE, enabled=False)
    on = await client.get_boolean_details_async("commerce", False, tenant_context(acme))
    off = await client.get_boolean_details_async("commerce", True, tenant_context(globex))
    assert (on.value, on.reason, on.variant, on.flag_metadata) == (
        True,
        Reason.TARGETING_MATCH,
        "on",
        {"version": 1},
    )
    assert (off.value, off.reason, off.variant) == (False, Reason.DISABLED, "off")


async def test_no_flag_gives_the_callers_default(client: OpenFeatureClient) -> None:
    details = await client.get_boolean_details_async("blog", True, tenant_context(uuid.uuid4()))
    assert (details.value, details.reason, details.error_code) == (True, Reason.DEFAULT, None)


async def test_a_partial_rollout_is_a_split(store: FlagStore, client: OpenFeatureClient) -> None:
    tenant = uuid.uuid4()
    await store.set(tenant, Feature.PAGES, enabled=True, rollout=50)
    details = await client.get_boolean_details_async("pages", False, tenant_context(tenant))
    assert details.reason == Reason.SPLIT
    assert details.value == in_rollout(tenant, Feature.PAGES, 50)


async def test_a_string_flag_is_the_variant(store: FlagStore, client: OpenFeatureClient) -> None:
    tenant = uuid.uuid4()
    await store.set(tenant, Feature.ADVANCED_SEARCH, enabled=True, variant="meilisearch")
    details = await client.get_string_details_async(
        "advanced_search", "postgres", tenant_context(tenant)
    )
    assert (details.value, details.variant, details.reason) == (
        "meilisearch",
        "meilisearch",
        Reason.TARGETING_MATCH,
    )


@pytest.mark.parametrize(
    ("key", "targeting_key", "expected"),
    [
        ("no_such_feature", str(uuid.UUID(int=1)), ErrorCode.FLAG_NOT_FOUND),
        ("commerce", None, ErrorCode.TARGETING_KEY_MISSING),
        ("commerce", "acme", ErrorCode.INVALID_CONTEXT),
    ],
)
async def test_errors_give_the_default_with_a_code(
    client: OpenFeatureClient, key: str, targeting_key: str | None, expected: ErrorCode
) -> None:
    context = EvaluationContext(targeting_key=targeting_key)
    details = await client.get_boolean_details_async(key, True, context)
    assert (details.value, details.reason, details.error_code) == (True, Reason.ERROR, expected)


async def test_other_types_are_a_type_mismatch(client: OpenFeatureClient) -> None:
    details = await client.get_integer_details_async("commerce", 7, tenant_context(uuid.uuid4()))
    assert (details.value, details.error_code) == (7, ErrorCode.TYPE_MISMATCH)


def test_the_sync_client_is_refused_not_blocked(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("commerce", True, tenant_context(uuid.uuid4()))
    assert (details.value, details.reason, details.error_code) == (
        True,
        Reason.ERROR,
        ErrorCode.GENERAL,
    )


async def test_the_cached_service_behind_the_provider(store: FlagStore) -> None:
    cache = FlagCache()
    api.set_provider(FeatureFlagProvider(FeatureFlags(store, cache=cache)), domain=DOMAIN)
    try:
        tenant = uuid.uuid4()
        await store.set(tenant, Feature.FORUM, enabled=True)
        client = api.get_client(DOMAIN)
        for _ in range(3):
            assert await client.get_boolean_value_async("forum", False, tenant_context(tenant))
        assert (cache.loads, cache.hits) == (1, 2)
    finally:
        api.clear_providers()
