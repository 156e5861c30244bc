"""Who is calling, for which tenant: the one dependency every tenant route goes through.

Order matters and is the same for REST and GraphQL: resolve the tenant (TenantCache in
front), take a rate-limit token for it, then verify the key and check that the key's tenant
is the resolved one. A request that fails any step does no work and writes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from opentelemetry import trace
from starlette.requests import HTTPConnection

from rustok_ref.api.auth import ApiKeys, Permission, Principal
from rustok_ref.api.metrics import ApiMetrics
from rustok_ref.api.ratelimit import RateLimiter
from rustok_ref.bootstrap import Services
from rustok_ref.errors import PermissionDeniedError, UnauthenticatedError
from rustok_ref.events.dispatcher import Dispatcher
from rustok_ref.storage import UnitOfWork
from rustok_ref.tenancy.model import Tenant

__all__ = [
    "ApiState",
    "RequestContext",
    "api_key_header",
    "api_state",
    "request_context",
    "require",
    "resolve_context",
]

API_KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key from `rustok-ref apikey create` (its tenant must be the request's).",
)


@dataclass(frozen=True)
class ApiState:
    """What the application holds for its lifetime (`app.state.api`)."""

    services: Services
    keys: ApiKeys
    limiter: RateLimiter
    metrics: ApiMetrics
    dispatcher: Dispatcher[int]
    """The in-process dispatcher the burst endpoint loads (`burst.py`)."""


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The resolved tenant, the verified principal, and the services to call."""

    tenant: Tenant
    principal: Principal
    api: ApiState

    @property
    def services(self) -> Services:
        return self.api.services

    def uow(self) -> UnitOfWork:
        """A unit of work as `rustok_app` with this request's tenant (row-level security)."""
        return UnitOfWork(self.api.services.container.sessions, tenant_id=self.tenant.id)

    def require(self, permission: Permission) -> None:
        if not self.principal.can(permission):
            raise PermissionDeniedError(
                f"role '{self.principal.role}' lacks the permission '{permission}'"
            )


def api_state(connection: HTTPConnection) -> ApiState:
    """The application's state, from a request or a WebSocket."""
    state: ApiState = connection.app.state.api
    return state


async def resolve_context(
    api: ApiState, headers: Mapping[str, str], peer: str | None, token: str | None
) -> RequestContext:
    """Tenant, rate limit, key, in that order (module docstring); GraphQL calls it too."""
    tenant = await api.services.resolver.resolve(headers, peer)
    span = trace.get_current_span()
    span.set_attribute("tenant_id", str(tenant.id))
    await api.limiter.check(tenant.id)
    if not token:
        raise UnauthenticatedError(f"missing {API_KEY_HEADER} header")
    principal = await api.keys.verify(token)
    if principal.tenant_id != tenant.id:
        raise PermissionDeniedError("this API key belongs to another tenant")
    span.set_attribute("enduser.role", principal.role.value)
    return RequestContext(tenant, principal, api)


async def request_context(
    request: Request,
    token: Annotated[str | None, Security(api_key_header)],
) -> RequestContext:
    return await resolve_context(
        api_state(request),
        request.headers,
        request.client.host if request.client else None,
        token,
    )


def require(permission: Permission) -> Callable[..., Awaitable[RequestContext]]:
    """A dependency: the request's context, once its role has `permission`."""

    async def dependency(
        context: Annotated[RequestContext, Depends(request_context)],
    ) -> RequestContext:
        context.require(permission)
        return context

    return dependency
