"""Per-tenant feature flags in PostgreSQL: reads, and writes that record a
`feature_flag.changed` event through the outbox in the same transaction and announce the
change after commit, so every instance's flag cache forgets the tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated
from uuid import UUID

from pydantic import Field, Strict, StrictBool
from sqlalchemy import RowMapping, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.events import outbox
from rustok_ref.events.envelope import CATALOGUE, EventPayload, new_envelope
from rustok_ref.events.validation import INT32_MAX, EntityId, MaxBytes, NotBlank
from rustok_ref.features.model import BUCKETS, Feature, FlagState
from rustok_ref.storage.tables import tenant_features
from rustok_ref.storage.unit_of_work import UnitOfWork

__all__ = ["FeatureFlagChanged", "FlagStore", "TenantFlags"]

TenantFlags = Mapping[Feature, FlagState]
"""All of one tenant's flags: what the cache holds per tenant."""

AfterCommit = Callable[[UUID], Awaitable[None]]
"""Called with the tenant after a committed change (the cache's invalidation)."""


@CATALOGUE.register("feature_flag.changed", aggregate="tenant", key="tenant_id")
class FeatureFlagChanged(EventPayload):
    tenant_id: EntityId
    feature: Annotated[str, NotBlank, MaxBytes(50)]
    enabled: StrictBool
    rollout: Annotated[int, Strict(), Field(ge=0, le=BUCKETS)]
    variant: Annotated[str, MaxBytes(100)] | None
    version: Annotated[int, Strict(), Field(ge=1, le=INT32_MAX)]


def _state(row: RowMapping) -> FlagState:
    return FlagState(
        tenant_id=row["tenant_id"],
        feature=Feature(row["feature"]),
        enabled=row["enabled"],
        rollout=row["rollout"],
        variant=row["variant"],
        metadata=row["metadata"],
        version=row["version"],
    )


_COLUMNS = (
    tenant_features.c.tenant_id,
    tenant_features.c.feature,
    tenant_features.c.enabled,
    tenant_features.c.rollout,
    tenant_features.c.variant,
    tenant_features.c.metadata,
    tenant_features.c.version,
)
_KNOWN = [feature.value for feature in Feature]


class FlagStore:
    """`await store.load(tenant)`, `await store.get(tenant, feature)`, `await store.set(...)`.

    `after_commit` (the cache's invalidation publisher) runs after each committed write.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        after_commit: AfterCommit | None = None,
    ) -> None:
        self._sessions = sessions
        self._after_commit = after_commit

    async def load(self, tenant_id: UUID) -> TenantFlags:
        """All of the tenant's flags, in one query."""
        query = select(*_COLUMNS).where(
            tenant_features.c.tenant_id == tenant_id, tenant_features.c.feature.in_(_KNOWN)
        )
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            rows = (await uow.session.execute(query)).mappings().all()
        return {state.feature: state for state in map(_state, rows)}

    async def get(self, tenant_id: UUID, feature: Feature) -> FlagState | None:
        """One flag, as the review's sketch reads it on every request."""
        query = select(*_COLUMNS).where(
            tenant_features.c.tenant_id == tenant_id, tenant_features.c.feature == feature.value
        )
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            row = (await uow.session.execute(query)).mappings().first()
        return None if row is None else _state(row)

    async def set(
        self,
        tenant_id: UUID,
        feature: Feature,
        *,
        enabled: bool,
        rollout: int = BUCKETS,
        variant: str | None = None,
        metadata: Mapping[str, str | int | float | bool] | None = None,
    ) -> FlagState:
        """Create or replace the tenant's flag (its version goes up by one), with its event."""
        FlagState(tenant_id, feature, enabled, rollout)  # validates before any I/O
        values = {
            "enabled": enabled,
            "rollout": rollout,
            "variant": variant,
            "metadata": dict(metadata or {}),
        }
        upsert = (
            insert(tenant_features)
            .values(tenant_id=tenant_id, feature=feature.value, **values)
            .on_conflict_do_update(
                index_elements=[tenant_features.c.tenant_id, tenant_features.c.feature],
                set_={
                    **values,
                    "version": tenant_features.c.version + 1,
                    "updated_at": func.now(),
                },
            )
            .returning(*_COLUMNS)
        )
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            state = _state((await uow.session.execute(upsert)).mappings().one())
            payload = FeatureFlagChanged(
                tenant_id=tenant_id,
                feature=feature.value,
                enabled=enabled,
                rollout=rollout,
                variant=variant,
                version=state.version,
            )
            await outbox.append(uow, new_envelope(payload, tenant_id=tenant_id))
            await uow.commit()
        if self._after_commit is not None:
            await self._after_commit(tenant_id)
        return state
