"""`FeatureFlags`: the review's `is_enabled(tenant, feature)` and `require(...)` (T3).

Each evaluation adds an OpenTelemetry `feature_flag.evaluation` event to the current span,
with the semantic conventions' attribute names. `cache=False` is the review's sketch, which
reads the database on every call (seed README, weak spots); otherwise a `FlagCache` serves
the tenant's flags, loaded once per TTL or invalidation.
"""

from __future__ import annotations

from typing import Final, Literal
from uuid import UUID

from opentelemetry import trace

from rustok_ref.errors import FeatureNotEnabledError
from rustok_ref.features.cache import FlagCache
from rustok_ref.features.model import Evaluation, Feature, evaluate
from rustok_ref.features.store import FlagStore

__all__ = ["EVALUATION_EVENT", "PROVIDER_NAME", "FeatureFlags"]

EVALUATION_EVENT: Final = "feature_flag.evaluation"
PROVIDER_NAME: Final = "rustok-ref"


class FeatureFlags:
    """`await flags.is_enabled(tenant, Feature.COMMERCE)`; `await flags.require(...)`."""

    def __init__(self, store: FlagStore, *, cache: FlagCache | Literal[False]) -> None:
        self._store = store
        self._cache = cache

    async def evaluate(self, tenant_id: UUID, feature: Feature) -> Evaluation:
        """The flag's value for the tenant and why; records the evaluation event."""
        if self._cache is False:
            state = await self._store.get(tenant_id, feature)
        else:
            state = (await self._cache.get(tenant_id, self._store.load)).get(feature)
        result = evaluate(tenant_id, feature, state)
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                EVALUATION_EVENT,
                {
                    "feature_flag.key": feature.value,
                    "feature_flag.provider.name": PROVIDER_NAME,
                    "feature_flag.context.id": str(tenant_id),
                    "feature_flag.result.value": result.value,
                    "feature_flag.result.reason": result.reason.lower(),
                    "feature_flag.result.variant": result.variant or "",
                    "feature_flag.version": "" if result.version is None else str(result.version),
                    "tenant.id": str(tenant_id),
                },
            )
        return result

    async def is_enabled(self, tenant_id: UUID, feature: Feature) -> bool:
        return (await self.evaluate(tenant_id, feature)).value

    async def require(self, tenant_id: UUID, feature: Feature) -> None:
        """Return when the feature is on for the tenant; else raise FeatureNotEnabledError."""
        if not await self.is_enabled(tenant_id, feature):
            raise FeatureNotEnabledError(
                f"feature {feature.value!r} is not enabled for this tenant",
                extra={"feature": feature.value},
            )
