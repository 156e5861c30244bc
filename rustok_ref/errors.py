"""The one error taxonomy: every domain failure is a `RustokError` subclass.

The review (T2) asks for a single error type whose HTTP status and GraphQL code are fixed in
one place; the real RusToK code has four competing ones and never implemented the proposed
GraphQL codes. Here the mapping is one table, `_TABLE`: each class takes its `kind`, HTTP
`status`, GraphQL `code`, `title` and whether it carries `Retry-After` from its row, and
`mapping_table()` hands the same rows to documentation.

Naming: a class is the kind in CamelCase plus `Error` (`NotFoundError`,
`TenantNotFoundError`, `CircuitBreakerOpenError`); the hierarchy is flat under
`RustokError`, apart from the retryable kinds, which share `RetryableError`.

Bodies follow RFC 9457 (problem details). A 500 never shows its message, its extensions or
its cause: the message stays on the exception, for logs only. This module is the domain
layer and imports no I/O framework (an import-linter contract checks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, NamedTuple, TypeAlias

JSONValue: TypeAlias = (
    str | int | float | bool | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
)
"""What may go into a problem body or GraphQL extensions."""

PROBLEM_TYPE_PREFIX: Final = "urn:rustok:error:"
GENERIC_INTERNAL_DETAIL: Final = "An internal error occurred."
DEFAULT_RETRY_AFTER_SECONDS: Final = 1

_RESERVED_MEMBERS: Final = frozenset(
    {"type", "title", "status", "detail", "instance", "code", "kind", "retry_after", "fields"}
)


class ErrorSpec(NamedTuple):
    """One row of the mapping: what a kind of error looks like to HTTP and GraphQL clients."""

    kind: str
    status: int
    code: str
    title: str
    retry_after: bool  # carries Retry-After: the header and the `retry_after` member


_TABLE: Final[tuple[ErrorSpec, ...]] = (
    ErrorSpec("validation", 400, "BAD_USER_INPUT", "Validation failed", False),
    ErrorSpec("unauthenticated", 401, "UNAUTHENTICATED", "Authentication required", False),
    ErrorSpec("permission_denied", 403, "FORBIDDEN", "Permission denied", False),
    ErrorSpec("tenant_disabled", 403, "FORBIDDEN", "Tenant disabled", False),
    ErrorSpec("feature_not_enabled", 403, "FORBIDDEN", "Feature not enabled", False),
    ErrorSpec("not_found", 404, "NOT_FOUND", "Not found", False),
    ErrorSpec("tenant_not_found", 404, "NOT_FOUND", "Tenant not found", False),
    ErrorSpec("conflict", 409, "CONFLICT", "Conflict", False),
    ErrorSpec("invalid_transition", 409, "CONFLICT", "Invalid state transition", False),
    ErrorSpec("rate_limit_exceeded", 429, "RATE_LIMIT_EXCEEDED", "Too many requests", True),
    ErrorSpec("backpressured", 503, "SERVICE_UNAVAILABLE", "Service overloaded", True),
    ErrorSpec("circuit_breaker_open", 503, "SERVICE_UNAVAILABLE", "Dependency unavailable", True),
    ErrorSpec("database_unavailable", 503, "SERVICE_UNAVAILABLE", "Database unavailable", True),
    ErrorSpec("database", 500, "INTERNAL_SERVER_ERROR", "Internal server error", False),
    ErrorSpec("internal", 500, "INTERNAL_SERVER_ERROR", "Internal server error", False),
)
_SPECS: Final = {row.kind: row for row in _TABLE}


def mapping_table() -> list[ErrorSpec]:
    """Every kind with its HTTP status, GraphQL code, title and Retry-After flag, in order."""
    return list(_TABLE)


class RustokError(Exception):
    """Base of every domain failure; instantiate a subclass, never this class.

    `detail` is the occurrence-specific message (defaults to the title); `extra` holds
    problem-body extension members, which must be JSON values and may not shadow the
    standard or taxonomy members.
    """

    kind: ClassVar[str]
    status: ClassVar[int]
    code: ClassVar[str]
    title: ClassVar[str]

    def __init_subclass__(cls, *, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is None:
            return
        spec = _SPECS[kind]
        if spec.retry_after != issubclass(cls, RetryableError):
            raise TypeError(f"{cls.__name__}: Retry-After in the table and the base class differ")
        cls.kind, cls.status, cls.code, cls.title = spec.kind, spec.status, spec.code, spec.title

    def __init__(
        self, detail: str | None = None, *, extra: Mapping[str, JSONValue] | None = None
    ) -> None:
        if getattr(type(self), "kind", None) is None:
            raise TypeError(f"{type(self).__name__} is abstract: raise one of its subclasses")
        clash = _RESERVED_MEMBERS.intersection(extra or {})
        if clash:
            raise ValueError(f"extension members shadow reserved ones: {sorted(clash)}")
        self.detail = self.title if detail is None else detail
        self.extra: dict[str, JSONValue] = dict(extra or {})
        super().__init__(self.detail)

    @property
    def exposes_detail(self) -> bool:
        """False for 500s: their message, extensions and cause are for logs, not clients."""
        return self.status != 500

    def _extensions(self) -> dict[str, JSONValue]:
        """Members shared by the problem body and the GraphQL extensions."""
        return dict(self.extra) if self.exposes_detail else {}

    def to_problem(self, instance: str | None = None) -> dict[str, JSONValue]:
        """The RFC 9457 body; `instance` (a URI reference) is left out when not given."""
        body: dict[str, JSONValue] = {
            "type": PROBLEM_TYPE_PREFIX + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail if self.exposes_detail else GENERIC_INTERNAL_DETAIL,
        }
        if instance is not None:
            body["instance"] = instance
        body["code"] = self.code
        body["kind"] = self.kind
        body.update(self._extensions())
        return body

    def headers(self) -> dict[str, str]:
        """HTTP headers the response must carry besides the body."""
        return {}

    def graphql_extensions(self) -> dict[str, JSONValue]:
        """The `extensions` object of a GraphQL error."""
        return {"code": self.code, **self._extensions()}


class RetryableError(RustokError):
    """A kind the client may retry later: it carries `retry_after` seconds (Retry-After)."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: int = DEFAULT_RETRY_AFTER_SECONDS,
        extra: Mapping[str, JSONValue] | None = None,
    ) -> None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int):
            raise TypeError(f"retry_after must be whole seconds, got {retry_after!r}")
        if retry_after < 0:
            raise ValueError(f"retry_after must not be negative, got {retry_after}")
        super().__init__(detail, extra=extra)
        self.retry_after = retry_after

    def _extensions(self) -> dict[str, JSONValue]:
        return {**super()._extensions(), "retry_after": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ValidationError(RustokError, kind="validation"):
    """Bad input; `fields` maps a field name to its messages (the `fields` member)."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        fields: Mapping[str, Sequence[str]] | None = None,
        extra: Mapping[str, JSONValue] | None = None,
    ) -> None:
        super().__init__(detail, extra=extra)
        self.fields = {name: list(messages) for name, messages in (fields or {}).items()}

    def _extensions(self) -> dict[str, JSONValue]:
        extensions = super()._extensions()
        if self.fields:
            extensions["fields"] = self.fields
        return extensions


class UnauthenticatedError(RustokError, kind="unauthenticated"):
    """No valid credentials."""


class PermissionDeniedError(RustokError, kind="permission_denied"):
    """Authenticated, but not allowed to do this."""


class TenantDisabledError(RustokError, kind="tenant_disabled"):
    """The tenant exists but is switched off."""


class FeatureNotEnabledError(RustokError, kind="feature_not_enabled"):
    """The tenant has not enabled the feature this operation needs (review T3)."""


class NotFoundError(RustokError, kind="not_found"):
    """The resource does not exist (for this tenant)."""


class TenantNotFoundError(RustokError, kind="tenant_not_found"):
    """No tenant matches the identifier."""


class ConflictError(RustokError, kind="conflict"):
    """The change clashes with current state, e.g. a duplicate SKU."""


class InvalidTransitionError(RustokError, kind="invalid_transition"):
    """A state machine refused a transition, e.g. cancelling a paid order."""


class RateLimitExceededError(RetryableError, kind="rate_limit_exceeded"):
    """The caller exceeded its rate limit."""


class BackpressuredError(RetryableError, kind="backpressured"):
    """The event pipeline is saturated and sheds load."""


class CircuitBreakerOpenError(RetryableError, kind="circuit_breaker_open"):
    """A dependency's circuit breaker is open: fail fast instead of waiting on it."""


class DatabaseUnavailableError(RetryableError, kind="database_unavailable"):
    """The database cannot be reached right now."""


class DatabaseError(RustokError, kind="database"):
    """The database failed a statement; the client sees only a generic 500."""


class InternalError(RustokError, kind="internal"):
    """A bug or an unexpected failure; the client sees only a generic 500."""


def from_exception(exc: Exception) -> RustokError:
    """`exc` itself when it is a `RustokError`, otherwise an `InternalError` caused by it."""
    if isinstance(exc, RustokError):
        return exc
    error = InternalError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
