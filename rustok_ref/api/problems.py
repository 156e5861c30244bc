"""The one place a failure becomes an HTTP answer: RFC 9457 `application/problem+json`.

Domain errors carry their own status, code and Retry-After (`errors.py`); request
validation becomes a `validation` problem naming each bad field; a plain HTTP error (an
unknown route, a wrong method, an oversized body) becomes an `about:blank` problem with the
status's phrase, as RFC 9457 §4.2.1 says; a lost database connection is
`database_unavailable` (503, Retry-After); anything else is a generic 500 whose details go
to the log only. Every body carries the request's correlation id.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from rustok_ref.errors import (
    DatabaseUnavailableError,
    RustokError,
    ValidationError,
    from_exception,
)
from rustok_ref.telemetry import correlation_id

__all__ = ["PROBLEM_JSON", "install_problem_handlers", "problem_response", "to_rustok_error"]

logger = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_response(
    body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    cid = correlation_id()
    if cid is not None:
        body = {**body, "correlation_id": cid}
    return ProblemResponse(body, status_code=status, headers=headers)


def to_rustok_error(exc: Exception) -> RustokError:
    """The taxonomy's error for any exception (what GraphQL reports as well)."""
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        error: RustokError = DatabaseUnavailableError("the database cannot be reached")
        error.__cause__ = exc
        return error
    if isinstance(exc, OSError) and not isinstance(exc, RustokError):
        # a refused or reset connection to PostgreSQL before SQLAlchemy wrapped it
        error = DatabaseUnavailableError("a dependency cannot be reached")
        error.__cause__ = exc
        return error
    return from_exception(exc)


def _rustok(request: Request, error: RustokError) -> JSONResponse:
    if error.status >= 500 and not error.headers():
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return problem_response(error.to_problem(request.url.path), error.status, error.headers())


def _fields(exc: RequestValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for problem in exc.errors():
        location = [str(part) for part in problem.get("loc", ()) if part != "body"]
        fields.setdefault(".".join(location) or "body", []).append(str(problem.get("msg")))
    return fields


def install_problem_handlers(app: FastAPI) -> None:
    async def on_rustok(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RustokError)
        return _rustok(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        error = ValidationError("the request is not valid", fields=_fields(exc))
        return _rustok(request, error)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        phrase = HTTPStatus(exc.status_code).phrase
        body = {
            "type": "about:blank",
            "title": phrase,
            "status": exc.status_code,
            "detail": exc.detail if isinstance(exc.detail, str) else phrase,
            "instance": request.url.path,
        }
        return problem_response(body, exc.status_code, dict(exc.headers or {}))

    async def on_other(request: Request, exc: Exception) -> JSONResponse:
        return _rustok(request, to_rustok_error(exc))

    app.add_exception_handler(RustokError, on_rustok)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_other)
