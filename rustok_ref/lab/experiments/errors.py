"""The review's error-handling claims (T2), checked on `rustok_ref.errors` as clients see it.

The review proposes one error enum with an HTTP status and a GraphQL code per variant
(NotFound 404 NOT_FOUND, PermissionDenied 403 FORBIDDEN, Validation 400 BAD_USER_INPUT,
RateLimitExceeded 429 RATE_LIMIT_EXCEEDED, CircuitBreakerOpen 503, anything else 500
INTERNAL_SERVER_ERROR). Here each kind is raised with an example message and rendered the
way a client receives it (the RFC 9457 body and its headers, and a GraphQL error: message,
path, extensions); the review's explicit pairs are read from those renderings, not from the
class attributes. The "one error type" claim counts the exception hierarchies the product
packages define: everything a service raises to the API should derive from `RustokError`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from rustok_ref import errors
from rustok_ref.errors import JSONValue, RetryableError, RustokError

# The review's explicit pairs (the catch-all checked for Database and Internal only).
REVIEW_HTTP: tuple[tuple[type[RustokError], int], ...] = (
    (errors.NotFoundError, 404),
    (errors.PermissionDeniedError, 403),
    (errors.ValidationError, 400),
    (errors.RateLimitExceededError, 429),
    (errors.CircuitBreakerOpenError, 503),
    (errors.DatabaseError, 500),
    (errors.InternalError, 500),
)
REVIEW_GRAPHQL: tuple[tuple[type[RustokError], str], ...] = (
    (errors.NotFoundError, "NOT_FOUND"),
    (errors.PermissionDeniedError, "FORBIDDEN"),
    (errors.ValidationError, "BAD_USER_INPUT"),
    (errors.RateLimitExceededError, "RATE_LIMIT_EXCEEDED"),
    (errors.DatabaseError, "INTERNAL_SERVER_ERROR"),
    (errors.InternalError, "INTERNAL_SERVER_ERROR"),
)
# The variants of the review's enum; the kinds it lacks are ours (DESIGN.md's table).
REVIEW_VARIANTS = frozenset(
    {
        errors.DatabaseError,
        errors.ValidationError,
        errors.NotFoundError,
        errors.PermissionDeniedError,
        errors.TenantNotFoundError,
        errors.CircuitBreakerOpenError,
        errors.RateLimitExceededError,
        errors.InternalError,
    }
)
# Where services live: the packages whose failures reach the API's error mapping.
SERVICE_PACKAGES = (
    "rustok_ref.errors",
    "rustok_ref.tenancy",
    "rustok_ref.events",
    "rustok_ref.resilience",
    "rustok_ref.commerce",
    "rustok_ref.saga",
    "rustok_ref.features",
    "rustok_ref.storage",
    "rustok_ref.api",
)
SECRET = "password=hunter2 host=10.1.2.3"  # put in 500s' messages: must not reach a client


def example(cls: type[RustokError]) -> RustokError:
    """An instance with a message (and members) a real call site would give."""
    if cls is errors.ValidationError:
        return cls("the order is not valid", fields={"quantity": ["must be at least 1"]})
    if cls in (errors.DatabaseError, errors.InternalError):
        return cls(f"connection lost: {SECRET}", extra={"dsn": SECRET})
    if issubclass(cls, RetryableError):
        return cls(f"{cls.title.lower()}: try again later", retry_after=30)
    return cls(f"{cls.title.lower()}: order 42", extra={"resource": "order", "id": 42})


def graphql_error(error: RustokError, path: Sequence[str | int]) -> dict[str, JSONValue]:
    """The GraphQL error object a resolver failing with `error` at `path` sends: the message
    is the problem body's public detail (a 500's is generic), extensions carry the code."""
    return {
        "message": error.to_problem()["detail"],
        "path": list(path),
        "extensions": error.graphql_extensions(),
    }


@dataclass(frozen=True)
class Rendered:
    """One kind of error as a client receives it."""

    kind: str
    cls: type[RustokError]
    in_review: bool
    status: int
    code: str
    headers: dict[str, str]
    problem: dict[str, JSONValue]
    graphql: dict[str, JSONValue]

    @property
    def leaks(self) -> bool:
        """Whether the example's secret reached the client (only 500s carry one)."""
        return SECRET in repr((self.problem, self.graphql, self.headers))


def render_all() -> list[Rendered]:
    """Every kind of the taxonomy, in the table's order, rendered from an example."""
    by_kind = {cls.kind: cls for cls in _kinds()}
    rendered = []
    for spec in errors.mapping_table():
        cls = by_kind[spec.kind]
        error = example(cls)
        problem = error.to_problem(instance="/api/orders/42")
        graphql = graphql_error(error, ["order"])
        status, extensions = problem["status"], graphql["extensions"]
        if not isinstance(status, int) or not isinstance(extensions, dict):
            raise TypeError(f"{spec.kind}: a problem body without a status, or no extensions")
        rendered.append(
            Rendered(
                kind=spec.kind,
                cls=cls,
                in_review=cls in REVIEW_VARIANTS,
                status=status,
                code=str(extensions["code"]),
                headers=error.headers(),
                problem=problem,
                graphql=graphql,
            )
        )
    return rendered


def _kinds() -> list[type[RustokError]]:
    """The concrete error classes of the taxonomy (those with a kind of their own)."""
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, RustokError) and "kind" in vars(cls)
    ]


@dataclass(frozen=True)
class PairCheck:
    """One of the review's pairs beside what a rendering gave."""

    error: str
    review: str
    ours: str

    @property
    def holds(self) -> bool:
        return self.review == self.ours


def check_http(rendered: Sequence[Rendered]) -> list[PairCheck]:
    by_class = {r.cls: r for r in rendered}
    return [PairCheck(cls.__name__, str(s), str(by_class[cls].status)) for cls, s in REVIEW_HTTP]


def check_graphql(rendered: Sequence[Rendered]) -> list[PairCheck]:
    by_class = {r.cls: r for r in rendered}
    return [PairCheck(cls.__name__, code, by_class[cls].code) for cls, code in REVIEW_GRAPHQL]


def review_http(cls: type[RustokError]) -> int | None:
    """The status the review's mapping gives `cls`: its explicit pair, else its catch-all
    500; None for a kind the review's enum does not have."""
    explicit = dict(REVIEW_HTTP)
    return explicit.get(cls, 500) if cls in REVIEW_VARIANTS else None


def review_graphql(cls: type[RustokError]) -> str | None:
    """The GraphQL code the review's mapping gives `cls` (catch-all INTERNAL_SERVER_ERROR)."""
    explicit = dict(REVIEW_GRAPHQL)
    return explicit.get(cls, "INTERNAL_SERVER_ERROR") if cls in REVIEW_VARIANTS else None


def share_holding(checks: Sequence[PairCheck]) -> float:
    """Percent of `checks` that hold."""
    return 100.0 * sum(check.holds for check in checks) / len(checks)


@dataclass(frozen=True)
class ErrorClass:
    """A public exception class defined in a service package, and the root of its tree."""

    name: str
    module: str
    root: str  # "RustokError", or the builtin it derives from instead


@dataclass(frozen=True)
class Hierarchies:
    classes: tuple[ErrorClass, ...]
    unimportable: tuple[str, ...]  # modules that failed to import (their classes unseen)

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(sorted({c.root for c in self.classes}))


def error_hierarchies(packages: Sequence[str] = SERVICE_PACKAGES) -> Hierarchies:
    """The public exception classes the service packages define, by root. Private ones
    (a leading underscore) are signals caught inside their module and are left out."""
    classes: dict[str, ErrorClass] = {}
    unimportable: list[str] = []
    for module in _modules(packages, unimportable):
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                root = "RustokError" if issubclass(obj, RustokError) else _builtin_root(obj)
                classes[f"{module.__name__}.{name}"] = ErrorClass(name, module.__name__, root)
    return Hierarchies(tuple(classes.values()), tuple(unimportable))


def _modules(packages: Sequence[str], unimportable: list[str]) -> list[ModuleType]:
    found: list[ModuleType] = []
    for name in packages:
        try:
            package = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a package not built yet
            unimportable.append(f"{name}: {exc}")
            continue
        except Exception as exc:
            unimportable.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        found.append(package)
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
            if ".migrations" in info.name:
                continue  # Alembic scripts: run by Alembic, never imported by a service
            try:
                found.append(importlib.import_module(info.name))
            except Exception as exc:
                unimportable.append(f"{info.name}: {type(exc).__name__}: {exc}")
    return found


def _builtin_root(cls: type[BaseException]) -> str:
    """The first builtin class in `cls`'s method resolution order."""
    builtin = next(base for base in cls.__mro__ if base.__module__ == "builtins")
    return builtin.__name__
