"""One pure-ASGI middleware for what every HTTP request gets, in one pass and no handler
work: a correlation id (accepted from `X-Correlation-ID` when well-formed, else new, and
returned), a server span, the request metrics, the body cap (413 before the handler reads
more than the cap) and the content-type check (415 for a body that is not JSON), and the
problem body for any failure nothing else answered (so even a 500 carries the id).

Pure ASGI rather than `BaseHTTPMiddleware`: no extra task or body copy per request, which is
what the API's hello benchmark measures against.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Final

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rustok_ref.api.metrics import ApiMetrics
from rustok_ref.api.problems import problem_response, to_rustok_error
from rustok_ref.telemetry import new_correlation_id, use_correlation_id

__all__ = ["CORRELATION_HEADER", "RequestMiddleware"]

logger = logging.getLogger(__name__)

CORRELATION_HEADER: Final = "X-Correlation-ID"
_CORRELATION_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_JSON_TYPES: Final = ("application/json", "application/graphql-response+json")


class _BodyTooLargeError(HTTPException):
    """Raised by the capped `receive`: an HTTPException, so that FastAPI's body parsing
    re-raises it (it swallows other errors into a 400) and the app answers 413."""


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer: trace.Tracer,
        metrics: ApiMetrics,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self._tracer = tracer
        self._metrics = metrics
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        offered = headers.get("x-correlation-id", "")
        cid = offered if _CORRELATION_ID.fullmatch(offered) else new_correlation_id()
        method: str = scope["method"]
        started = time.perf_counter()
        response_started = False
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal response_started, status
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message).append(CORRELATION_HEADER, cid)
            await send(message)

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body:
                    raise _BodyTooLargeError(413, f"the body exceeds {self._max_body} bytes")
            return message

        with (
            use_correlation_id(cid),
            self._tracer.start_as_current_span(
                f"{method} {scope['path']}", kind=SpanKind.SERVER
            ) as span,
        ):
            span.set_attribute("http.request.method", method)
            span.set_attribute("correlation_id", cid)
            try:
                refusal = self._refusal(method, headers)
                if refusal is not None:
                    await problem_response(*refusal)(scope, receive, send_with_id)
                else:
                    await self.app(scope, capped_receive, send_with_id)
            except _BodyTooLargeError:
                if not response_started:
                    await problem_response(*self._too_large())(scope, receive, send_with_id)
            except Exception as exc:
                if response_started:
                    raise
                error = to_rustok_error(exc)
                span.record_exception(exc)
                if error.status >= 500:
                    logger.error("%s %s failed", method, scope["path"], exc_info=exc)
                body = error.to_problem(scope["path"])
                await problem_response(body, error.status, error.headers())(
                    scope, receive, send_with_id
                )
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                self._metrics.observe_request(
                    method, template, status, time.perf_counter() - started
                )

    def _refusal(self, method: str, headers: Headers) -> tuple[dict[str, object], int] | None:
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            return self._too_large()
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        if method in _BODY_METHODS and has_body and not _is_json(headers.get("content-type", "")):
            return _about_blank(415, "Unsupported Media Type", "send the body as application/json")
        return None

    def _too_large(self) -> tuple[dict[str, object], int]:
        return _about_blank(413, "Content Too Large", f"the body exceeds {self._max_body} bytes")


def _about_blank(status: int, title: str, detail: str) -> tuple[dict[str, object], int]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}, status
