"""The flag model: Unleash's rollout bucketing by tenant (sticky, monotonic, uniform) and the
evaluation rule."""

from __future__ import annotations

import random
import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustok_ref.features import (
    EvaluationReason,
    Feature,
    FlagState,
    evaluate,
    in_rollout,
    normalized_hash,
)

features = st.sampled_from(Feature)
percents = st.integers(min_value=0, max_value=100)


@pytest.mark.parametrize(
    ("stickiness", "group", "bucket"),
    [("123", "gr1", 73), ("999", "groupX", 25)],  # Unleash SDKs' normalizedHash test vectors
)
def test_buckets_agree_with_unleash(stickiness: str, group: str, bucket: int) -> None:
    assert normalized_hash(stickiness, group) == bucket


@given(st.uuids(), features)
def test_a_tenant_always_lands_in_the_same_bucket(tenant: uuid.UUID, feature: Feature) -> None:
    bucket = normalized_hash(str(tenant), feature.value)
    assert 1 <= bucket <= 100
    assert normalized_hash(str(uuid.UUID(str(tenant))), feature.value) == bucket


@given(st.uuids(), features, percents, percents)
def test_raising_the_rollout_only_adds_tenants(
    tenant: uuid.UUID, feature: Feature, low: int, high: int
) -> None:
    low, high = sorted((low, high))
    if in_rollout(tenant, feature, low):
        assert in_rollout(tenant, feature, high)


@given(st.uuids(), features)
def test_zero_is_nobody_and_a_hundred_is_everybody(tenant: uuid.UUID, feature: Feature) -> None:
    assert not in_rollout(tenant, feature, 0)
    assert in_rollout(tenant, feature, 100)


def test_buckets_are_roughly_uniform_over_tenants() -> None:
    rng = random.Random(20261126)  # fixed: the counts below are the same on every run
    tenants = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(100_000)]
    counts = Counter(normalized_hash(str(t), Feature.COMMERCE.value) for t in tenants)
    assert set(counts) == set(range(1, 101))
    assert all(800 <= count <= 1200 for count in counts.values())  # expected 1000, sd ~31
    in_30 = sum(in_rollout(t, Feature.COMMERCE, 30) for t in tenants)
    assert 29_000 <= in_30 <= 31_000


@given(st.uuids(), features, st.booleans(), percents)
def test_evaluation_follows_the_flag(
    tenant: uuid.UUID, feature: Feature, enabled: bool, rollout: int
) -> None:
    state = FlagState(tenant, feature, enabled, rollout, version=3)
    result = evaluate(tenant, feature, state)
    assert result.version == 3
    if not enabled:
        assert (result.value, result.reason) == (False, EvaluationReason.DISABLED)
    elif rollout == 100:
        assert (result.value, result.reason) == (True, EvaluationReason.TARGETING_MATCH)
    else:
        assert result.reason is EvaluationReason.SPLIT
        assert result.value == in_rollout(tenant, feature, rollout)


@given(st.uuids(), features)
def test_no_flag_is_off_by_default(tenant: uuid.UUID, feature: Feature) -> None:
    result = evaluate(tenant, feature, None)
    assert (result.value, result.reason, result.version) == (False, EvaluationReason.DEFAULT, None)


@pytest.mark.parametrize("rollout", [-1, 101])
def test_a_rollout_is_a_percentage(rollout: int) -> None:
    with pytest.raises(ValueError, match="rollout"):
        FlagState(uuid.uuid4(), Feature.BLOG, True, rollout)


def test_the_review_features() -> None:
    assert [f.name for f in Feature] == [
        "COMMERCE",
        "BLOG",
        "FORUM",
        "PAGES",
        "ADVANCED_SEARCH",
        "REALTIME_CHAT",
        "VIDEO_STREAMING",
        "CUSTOM_SCRIPTING",
    ]
