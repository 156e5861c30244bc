"""GraphQL at /graphql: POST for queries and mutations, a WebSocket (graphql-transport-ws)
for the subscriptions. The schema is in `schema`; who calls is resolved as for REST
(`context`)."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException as StrawberryHTTPError
from starlette.exceptions import HTTPException
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from rustok_ref.api.graphql.context import GraphQLContext, connect_websocket, graphql_context
from rustok_ref.api.graphql.schema import schema
from rustok_ref.api.schemas import PROBLEM_RESPONSES

__all__ = ["router"]


class _Router(GraphQLRouter[GraphQLContext, None]):
    async def on_ws_connect(self, context: GraphQLContext) -> None:
        await connect_websocket(context)

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        """Strawberry answers a body it cannot take (not JSON, a batch) in plain text; as an
        HTTP error it becomes a problem like every other refusal."""
        try:
            return await super().run(*args, **kwargs)
        except StrawberryHTTPError as exc:
            raise HTTPException(exc.status_code, exc.reason) from exc


router = _Router(
    schema,
    path="/graphql",
    graphql_ide=None,
    allow_queries_via_get=False,
    context_getter=graphql_context,
    subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    tags=["graphql"],
    # refusals of the caller come before GraphQL and are problems, as in REST
    responses={status: PROBLEM_RESPONSES[status] for status in (400, 401, 403, 404, 429, 503)},
)
