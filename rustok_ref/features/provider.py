"""An OpenFeature provider over `FeatureFlags`: the flag key is a `Feature` value and the
evaluation context's targeting key is the tenant id.

Reasons are OpenFeature's: TARGETING_MATCH (switched on for the tenant), SPLIT (a partial
rollout), DISABLED (switched off), DEFAULT (the tenant has no such flag: the caller's default
is returned). Unknown keys fail with FLAG_NOT_FOUND, a missing or malformed tenant with
TARGETING_KEY_MISSING / INVALID_CONTEXT, and integer, float and object flags with
TYPE_MISMATCH; the SDK turns these into the default value with reason ERROR. Evaluation reads
the database, so only the SDK's `*_async` methods resolve; the synchronous ones fail with
GENERAL rather than block the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import (
    FlagNotFoundError,
    GeneralError,
    InvalidContextError,
    TargetingKeyMissingError,
    TypeMismatchError,
)
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider
from openfeature.provider.metadata import Metadata

from rustok_ref.features.model import Evaluation, EvaluationReason, Feature
from rustok_ref.features.service import PROVIDER_NAME, FeatureFlags

__all__ = ["FeatureFlagProvider"]

_SYNC = "this provider reads the database: use the client's *_async methods"


class FeatureFlagProvider(AbstractProvider):
    """`api.set_provider(FeatureFlagProvider(flags), domain=...)`."""

    def __init__(self, flags: FeatureFlags) -> None:
        super().__init__()
        self._flags = flags

    def get_metadata(self) -> Metadata:
        return Metadata(name=PROVIDER_NAME)

    async def _evaluate(
        self, flag_key: str, evaluation_context: EvaluationContext | None
    ) -> Evaluation:
        try:
            feature = Feature(flag_key)
        except ValueError:
            raise FlagNotFoundError(f"no feature {flag_key!r}") from None
        key = None if evaluation_context is None else evaluation_context.targeting_key
        if not key:
            raise TargetingKeyMissingError("the targeting key must be the tenant id")
        try:
            tenant_id = UUID(key)
        except ValueError:
            raise InvalidContextError(f"targeting key {key!r} is not a tenant id") from None
        return await self._flags.evaluate(tenant_id, feature)

    async def resolve_boolean_details_async(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        result = await self._evaluate(flag_key, evaluation_context)
        if result.reason is EvaluationReason.DEFAULT:
            return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT)
        return FlagResolutionDetails(
            value=result.value,
            reason=Reason(result.reason.value),
            variant=result.variant or ("on" if result.value else "off"),
            flag_metadata={} if result.version is None else {"version": result.version},
        )

    async def resolve_string_details_async(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """The variant of a flag that is on for the tenant; else the default."""
        result = await self._evaluate(flag_key, evaluation_context)
        if not result.value or result.variant is None:
            reason = Reason.DEFAULT if result.value else Reason(result.reason.value)
            return FlagResolutionDetails(value=default_value, reason=reason)
        return FlagResolutionDetails(
            value=result.variant, reason=Reason(result.reason.value), variant=result.variant
        )

    async def resolve_integer_details_async(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        raise TypeMismatchError(f"{flag_key!r} is a boolean flag")

    async def resolve_float_details_async(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        raise TypeMismatchError(f"{flag_key!r} is a boolean flag")

    async def resolve_object_details_async(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        raise TypeMismatchError(f"{flag_key!r} is a boolean flag")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        raise GeneralError(_SYNC)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        raise GeneralError(_SYNC)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        raise GeneralError(_SYNC)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        raise GeneralError(_SYNC)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        raise GeneralError(_SYNC)
