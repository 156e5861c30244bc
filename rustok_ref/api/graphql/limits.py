"""Request limits, checked before anything runs: query depth, tokens and aliases.

Strawberry's limiters take their numbers when built, but the numbers are the application's
settings (`RUSTOK_GRAPHQL_MAX_DEPTH`, `RUSTOK_GRAPHQL_MAX_TOKENS`), which the module-level
router does not know. So one extension builds the three limiters per operation from the
context's settings and runs their hooks, which only set up the parser and the validation
rules. A document over a limit fails parsing or validation: a BAD_USER_INPUT error, and no
resolver runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Final, cast

from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from rustok_ref.api.graphql.context import GraphQLContext

__all__ = ["MAX_ALIASES", "RequestLimits"]

MAX_ALIASES: Final = 15
"""Aliases per document: enough for any client, too few to multiply one costly field."""


class RequestLimits(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        assert isinstance(context, GraphQLContext)
        settings = context.settings
        limiters: list[SchemaExtension] = [
            QueryDepthLimiter(max_depth=settings.graphql_max_depth),
            MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
            MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        ]
        with ExitStack() as stack:
            for limiter in limiters:
                limiter.execution_context = self.execution_context
                hook = cast(Callable[[], Iterator[None]], limiter.on_operation)  # sync ones
                stack.enter_context(contextmanager(hook)())
            yield
