"""The one place a GraphQL error gets its `extensions`: what the taxonomy says of its cause.

A domain error (`RustokError`) keeps its detail and gets `graphql_extensions()` plus its
`kind`; an error in the request itself (syntax, an unknown field, a limit, a bad variable)
is `validation` (BAD_USER_INPUT); anything else goes through `to_rustok_error`, so a lost
database is SERVICE_UNAVAILABLE and a bug is INTERNAL_SERVER_ERROR with a generic message,
its details in the log only. Strawberry calls `process_errors` for every error of every
operation (subscriptions included) before the response is written, so overriding it maps
them all, once.
"""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from rustok_ref.api.problems import to_rustok_error
from rustok_ref.errors import (
    GENERIC_INTERNAL_DETAIL,
    InternalError,
    RustokError,
    ValidationError,
)

__all__ = ["RustokSchema", "domain_error"]

logger = logging.getLogger(__name__)


def domain_error(error: GraphQLError) -> RustokError:
    """The taxonomy's error behind a GraphQL error."""
    cause = error.original_error
    if isinstance(cause, RustokError):
        return cause
    if cause is None or isinstance(cause, GraphQLError):
        # graphql-core's own: a request error before execution, a broken result during it
        return (
            ValidationError(error.message) if error.path is None else InternalError(error.message)
        )
    return to_rustok_error(cause)


class RustokSchema(strawberry.Schema):
    """A schema whose errors carry the taxonomy's code, kind and members."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            domain = domain_error(error)
            if domain.status >= 500 and not domain.headers():
                logger.error("GraphQL %s failed", error.path, exc_info=domain)
            error.message = domain.detail if domain.exposes_detail else GENERIC_INTERNAL_DETAIL
            error.extensions = {**domain.graphql_extensions(), "kind": domain.kind}
