"""Who is calling GraphQL, resolved exactly as REST resolves it (`resolve_context`).

Over HTTP the context getter resolves the tenant, takes the rate-limit token and verifies
the key before the operation is even parsed, so a refused request does no work and is
answered with the same problem+json as REST. A WebSocket cannot be refused that way at its
handshake (browsers cannot set headers on it), so the key and the tenant may come in the
`connection_init` payload (names as the headers, `X-API-Key` and `X-Tenant-ID`, overriding
the handshake's headers); the connection is resolved once there and closed with 4403 when
refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from rustok_ref.api.context import (
    API_KEY_HEADER,
    ApiState,
    RequestContext,
    api_state,
    resolve_context,
)
from rustok_ref.api.problems import to_rustok_error
from rustok_ref.config import Settings
from rustok_ref.errors import UnauthenticatedError

__all__ = ["GraphQLContext", "GraphQLInfo", "connect_websocket", "graphql_context"]

logger = logging.getLogger(__name__)


class GraphQLContext(BaseContext):
    """The operation's context: the application's state and, once resolved, the caller."""

    def __init__(self, api: ApiState, caller: RequestContext | None = None) -> None:
        super().__init__()
        self.api = api
        self.caller = caller

    @property
    def settings(self) -> Settings:
        return self.api.services.container.settings

    @property
    def rustok(self) -> RequestContext:
        """The resolved caller (a WebSocket has one after `connection_init`)."""
        if self.caller is None:
            raise UnauthenticatedError("the connection carried no credentials")
        return self.caller


GraphQLInfo = Info[GraphQLContext, None]


async def _resolve(
    api: ApiState, connection: HTTPConnection, headers: Mapping[str, str]
) -> RequestContext:
    by_name = {name.lower(): value for name, value in headers.items()}
    peer = connection.client.host if connection.client else None
    return await resolve_context(api, by_name, peer, by_name.get(API_KEY_HEADER.lower()))


async def graphql_context(connection: HTTPConnection) -> GraphQLContext:
    """The context getter (a FastAPI dependency of the HTTP and the WebSocket route)."""
    api = api_state(connection)
    if connection.scope["type"] == "websocket":
        return GraphQLContext(api)
    return GraphQLContext(api, await _resolve(api, connection, connection.headers))


async def connect_websocket(context: GraphQLContext) -> None:
    """Resolve the WebSocket's caller from `connection_init` over the handshake headers;
    ConnectionRejectionError (close 4403) when any check refuses it."""
    connection = context.request
    assert isinstance(connection, HTTPConnection)
    params: Any = context.connection_params or {}
    given = {str(name): value for name, value in params.items() if isinstance(value, str)}
    try:
        context.caller = await _resolve(context.api, connection, {**connection.headers, **given})
    except Exception as exc:
        error = to_rustok_error(exc)
        if error.status >= 500:
            logger.error("GraphQL WebSocket connection failed", exc_info=error)
        raise ConnectionRejectionError({**error.graphql_extensions(), "kind": error.kind}) from exc
