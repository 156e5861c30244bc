"""The pure parts of the tenant caches: v1's keys, the invalidation message format, settings."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from rustok_ref.config import Settings
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.cache_api import TenantCacheAPI
from rustok_ref.tenancy.cache_v1 import HandWrittenTenantCache, cache_key, negative_key
from rustok_ref.tenancy.invalidation import channel, decode, encode
from rustok_ref.tenancy.model import IdentifierKind, TenantIdentifier

UUID_VALUE = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize(
    ("identifier", "positive", "negative"),
    [
        (
            TenantIdentifier(IdentifierKind.UUID, UUID_VALUE),
            f"tenant:v1:uuid:{UUID_VALUE}",
            f"tenant_negative:v1:uuid:{UUID_VALUE}",
        ),
        (
            TenantIdentifier(IdentifierKind.SLUG, "acme"),
            "tenant:v1:slug:acme",
            "tenant_negative:v1:slug:acme",
        ),
        # v1 lowercases a host again, although the validator already did.
        (
            TenantIdentifier(IdentifierKind.HOST, "Shop.Example.COM"),
            "tenant:v1:host:shop.example.com",
            "tenant_negative:v1:host:shop.example.com",
        ),
    ],
)
def test_v1_keys_are_the_real_ones(
    identifier: TenantIdentifier, positive: str, negative: str
) -> None:
    assert cache_key(identifier) == positive
    assert negative_key(identifier) == negative


def test_the_channel_is_v1s_inside_the_run_prefix() -> None:
    assert channel("rustok:run1:") == "rustok:run1:tenant.cache.invalidate"


identifiers = st.builds(
    TenantIdentifier, st.sampled_from(list(IdentifierKind)), st.text(max_size=40)
)


@given(st.lists(identifiers, max_size=5))
def test_an_invalidation_message_round_trips(sent: list[TenantIdentifier]) -> None:
    assert set(decode(encode(sent).encode())) == set(sent)


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"{}", b'"slug"', b"[1]", b'[["tenant", "acme"]]', b'[["slug", 1]]'],
)
def test_a_malformed_message_is_a_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError, match="not a tenant invalidation message"):
        decode(payload)


def test_the_message_is_json_pairs() -> None:
    message = encode([TenantIdentifier(IdentifierKind.SLUG, "acme")])
    assert json.loads(message) == [["slug", "acme"]]


@pytest.mark.parametrize(
    "bad",
    [{"capacity": 0}, {"ttl": 0}, {"tti": -1.0}, {"negative_ttl": 0}],
)
def test_the_cache_refuses_nonsense_bounds(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        TenantCache(**bad)


@pytest.mark.parametrize("cache", [TenantCache(), HandWrittenTenantCache()])
async def test_a_cache_without_the_loader_a_path_needs_says_so(cache: TenantCacheAPI) -> None:
    identifier = TenantIdentifier(IdentifierKind.SLUG, "acme")
    with pytest.raises(TypeError, match="without a loader"):
        await cache.get_or_load(identifier)
    with pytest.raises(TypeError, match="without a sync_loader"):
        cache.get_or_load_sync(identifier)


async def test_v1_with_redis_metrics_has_no_sync_path() -> None:
    client = aioredis.Redis()  # never connects: the sync path refuses first
    with pytest.raises(ValueError, match="redis_prefix"):
        HandWrittenTenantCache(redis=client)
    cache = HandWrittenTenantCache(redis=client, redis_prefix="rustok:unit:")
    with pytest.raises(TypeError, match="async-only"):
        cache.get_or_load_sync(TenantIdentifier(IdentifierKind.SLUG, "acme"))
    await client.aclose()


def test_settings_give_the_cache_its_bounds() -> None:
    settings = Settings(tenant_cache_ttl_s=30, tenant_cache_tti_s=20, tenant_negative_ttl_s=None)
    now = [0.0]
    cache = TenantCache.from_settings(settings, sync_loader=lambda _: None, clock=lambda: now[0])
    identifier = TenantIdentifier(IdentifierKind.SLUG, "acme")
    cache.get_or_load_sync(identifier)
    cache.get_or_load_sync(identifier)
    assert cache.stats().load_success_count == 2, "negative_ttl None: not-founds not cached"
