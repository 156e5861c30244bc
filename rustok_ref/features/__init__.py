"""Per-tenant feature flags (review T3): the Feature enum, flags in PostgreSQL, a moka cache
invalidated over Redis, `FeatureFlags.is_enabled` / `require`, and an OpenFeature provider."""

from rustok_ref.features.cache import FlagCache, FlagInvalidationListener, FlagInvalidationPublisher
from rustok_ref.features.model import (
    Evaluation,
    EvaluationReason,
    Feature,
    FlagState,
    evaluate,
    in_rollout,
    normalized_hash,
)
from rustok_ref.features.provider import FeatureFlagProvider
from rustok_ref.features.service import EVALUATION_EVENT, FeatureFlags
from rustok_ref.features.store import FeatureFlagChanged, FlagStore

__all__ = [
    "EVALUATION_EVENT",
    "Evaluation",
    "EvaluationReason",
    "Feature",
    "FeatureFlagChanged",
    "FeatureFlagProvider",
    "FeatureFlags",
    "FlagCache",
    "FlagInvalidationListener",
    "FlagInvalidationPublisher",
    "FlagState",
    "FlagStore",
    "evaluate",
    "in_rollout",
    "normalized_hash",
]
