"""Feature flags, pure: the review's Feature enum (T3), a tenant's flag state, and the
evaluation rule, including percentage rollouts bucketed by tenant the way Unleash does.

Unleash's `flexibleRollout` buckets a context value with MurmurHash3 (x86, 32 bit, seed 0)
of `"groupId:stickinessValue"`, then `% 100 + 1`; the group is the flag's name. With the
tenant id as the stickiness value, a tenant always lands in the same bucket (1..100) and is
in a rollout of `p` percent when its bucket is at most `p`, so raising `p` only adds tenants.
The hash is the `mmh3` package's, so the buckets agree with Unleash's SDKs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from uuid import UUID

import mmh3

__all__ = [
    "BUCKETS",
    "Evaluation",
    "EvaluationReason",
    "Feature",
    "FlagState",
    "evaluate",
    "in_rollout",
    "normalized_hash",
]

BUCKETS: Final = 100
ROLLOUT_SEED: Final = 0  # Unleash's seed for rollouts (variants use 86028157)


class Feature(StrEnum):
    """The review's features, switched per tenant."""

    COMMERCE = "commerce"
    BLOG = "blog"
    FORUM = "forum"
    PAGES = "pages"
    ADVANCED_SEARCH = "advanced_search"
    REALTIME_CHAT = "realtime_chat"
    VIDEO_STREAMING = "video_streaming"
    CUSTOM_SCRIPTING = "custom_scripting"


class EvaluationReason(StrEnum):
    """Why an evaluation gave its value, in OpenFeature's vocabulary."""

    DEFAULT = "DEFAULT"  # the tenant has no flag for the feature: off
    DISABLED = "DISABLED"  # the tenant's flag is switched off
    TARGETING_MATCH = "TARGETING_MATCH"  # switched on for the whole tenant
    SPLIT = "SPLIT"  # a partial rollout decided by the tenant's bucket


def normalized_hash(stickiness: str, group_id: str, *, seed: int = ROLLOUT_SEED) -> int:
    """Unleash's `normalizedHash`: the bucket, 1..100, of `stickiness` within `group_id`."""
    return mmh3.hash(f"{group_id}:{stickiness}", seed, signed=False) % BUCKETS + 1


def in_rollout(tenant_id: UUID, feature: Feature, percentage: int) -> bool:
    """Whether the tenant falls inside a `percentage` rollout of `feature` (sticky)."""
    return percentage > 0 and normalized_hash(str(tenant_id), feature.value) <= percentage


@dataclass(frozen=True, slots=True)
class FlagState:
    """One tenant's flag for one feature, as stored."""

    tenant_id: UUID
    feature: Feature
    enabled: bool
    rollout: int = BUCKETS  # percent of the group; 100 is everyone
    variant: str | None = None
    metadata: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    version: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rollout <= BUCKETS:
            raise ValueError(f"rollout must be 0..{BUCKETS} percent, got {self.rollout}")


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of one evaluation: the value, why, and the flag it came from."""

    feature: Feature
    tenant_id: UUID
    value: bool
    reason: EvaluationReason
    variant: str | None = None
    version: int | None = None


def evaluate(tenant_id: UUID, feature: Feature, state: FlagState | None) -> Evaluation:
    """The flag's value for the tenant: off without a flag or when switched off; on for a
    full rollout; for a partial one, on when the tenant's bucket is inside it."""
    if state is None:
        return Evaluation(feature, tenant_id, False, EvaluationReason.DEFAULT)
    if not state.enabled:
        reason, value = EvaluationReason.DISABLED, False
    elif state.rollout >= BUCKETS:
        reason, value = EvaluationReason.TARGETING_MATCH, True
    else:
        reason, value = EvaluationReason.SPLIT, in_rollout(tenant_id, feature, state.rollout)
    return Evaluation(feature, tenant_id, value, reason, state.variant, state.version)
