"""Field permissions: the caller's role, and the tenant's feature flags (review T3).

Each raises the domain's own error rather than returning False, so the error mapping gives
it its code and kind (FORBIDDEN, `permission_denied` or `feature_not_enabled`) like any
other domain failure.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission, PermissionExtension

from rustok_ref.api.auth import Permission
from rustok_ref.api.graphql.context import GraphQLInfo
from rustok_ref.features.model import Feature

__all__ = ["RequireFeature", "RequirePermission", "guarded"]


class RequireFeature(BasePermission):
    """The tenant has `feature` on (`FeatureFlags.require`)."""

    def __init__(self, feature: Feature) -> None:
        self.feature = feature

    async def has_permission(self, source: Any, info: GraphQLInfo, **kwargs: Any) -> bool:
        caller = info.context.rustok
        await caller.services.flags.require(caller.tenant.id, self.feature)
        return True


class RequirePermission(BasePermission):
    """The caller's role grants `permission` (`RequestContext.require`)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def has_permission(self, source: Any, info: GraphQLInfo, **kwargs: Any) -> bool:
        info.context.rustok.require(self.permission)
        return True


def guarded(
    permission: Permission, *, feature: Feature | None = Feature.COMMERCE
) -> PermissionExtension:
    """A field's permission extension: the tenant's feature (if any) first, then the role."""
    checks: list[BasePermission] = [RequirePermission(permission)]
    if feature is not None:
        checks.insert(0, RequireFeature(feature))
    return PermissionExtension(permissions=checks, use_directives=False)
