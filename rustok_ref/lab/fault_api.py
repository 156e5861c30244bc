"""An HTTP control API for the fault proxies, on Toxiproxy's routes and JSON, so that a load
run can be steered from outside it (curl, a notebook, a Toxiproxy client).

Routes, as Toxiproxy's:

    GET    /proxies                         {name: proxy, ...}
    GET    /proxies/{proxy}                 proxy
    POST   /proxies/{proxy}                 {"enabled": false} takes it down, true up again
    GET    /proxies/{proxy}/toxics          [toxic, ...]
    POST   /proxies/{proxy}/toxics          {type, name?, stream?, toxicity?, attributes?}
    GET    /proxies/{proxy}/toxics/{toxic}  toxic
    DELETE /proxies/{proxy}/toxics/{toxic}  204
    POST   /reset                           204: every proxy enabled, every toxic removed

A proxy is `{name, listen, upstream, enabled, toxics, stats}` (`stats`, the proxy's counters,
is the one addition); a toxic is `{name, type, stream, toxicity, attributes}`. Errors are
`{"error": message, "status": code}`: 400 for a bad body or toxic, 404 for an unknown proxy,
toxic or route, 409 for a toxic name already taken.

Why the standard library's http.server: a handful of routes in one thread on loopback, beside
proxies that already run their own loop; an ASGI framework would need a server and a loop of
its own for the same thing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from rustok_ref.lab.faults import (
    LOOPBACK,
    STREAMS,
    FaultConfigError,
    FaultProxy,
    ProxySet,
    Toxic,
    make_toxic,
)

log = logging.getLogger(__name__)

_TOXIC_FIELDS = frozenset({"name", "type", "stream", "toxicity", "attributes"})
_POLL_S = 0.05  # how often the server checks for stop(): stop returns within this


class _HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def toxic_json(toxic: Toxic) -> dict[str, Any]:
    return {
        "name": toxic.name,
        "type": toxic.type,
        "stream": toxic.stream,
        "toxicity": toxic.toxicity,
        "attributes": toxic.attributes,
    }


def proxy_json(proxy: FaultProxy) -> dict[str, Any]:
    host, port = proxy.listen_address
    return {
        "name": proxy.name,
        "listen": f"{host}:{port}",
        "upstream": f"{proxy.upstream[0]}:{proxy.upstream[1]}",
        "enabled": proxy.enabled,
        "toxics": [toxic_json(toxic) for toxic in proxy.toxics()],
        "stats": dataclasses.asdict(proxy.stats()),
    }


class _Server(ThreadingHTTPServer):
    def __init__(self, port: int, proxies: ProxySet) -> None:
        super().__init__((LOOPBACK, port), _Handler)
        self.proxies = proxies


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._respond("GET")

    def do_POST(self) -> None:
        self._respond("POST")

    def do_DELETE(self) -> None:
        self._respond("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fault control: " + format, *args)

    def _respond(self, method: str) -> None:
        parts = [part for part in urlsplit(self.path).path.split("/") if part]
        try:
            status, body = self._dispatch(method, parts)
        except _HttpError as exc:
            status, body = exc.status, {"error": exc.message, "status": int(exc.status)}
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(self, method: str, parts: list[str]) -> tuple[HTTPStatus, Any]:
        match method, parts:
            case "GET", ["proxies"]:
                return HTTPStatus.OK, {
                    proxy.name: proxy_json(proxy) for proxy in self.server.proxies
                }
            case "GET", ["proxies", name]:
                return HTTPStatus.OK, proxy_json(self._proxy(name))
            case "POST", ["proxies", name]:
                return HTTPStatus.OK, self._set_enabled(self._proxy(name))
            case "GET", ["proxies", name, "toxics"]:
                return HTTPStatus.OK, [toxic_json(toxic) for toxic in self._proxy(name).toxics()]
            case "POST", ["proxies", name, "toxics"]:
                return HTTPStatus.OK, self._add_toxic(self._proxy(name))
            case "GET", ["proxies", name, "toxics", toxic]:
                return HTTPStatus.OK, toxic_json(self._toxic(self._proxy(name), toxic))
            case "DELETE", ["proxies", name, "toxics", toxic]:
                proxy = self._proxy(name)
                try:
                    proxy.remove_toxic(toxic)
                except FaultConfigError:
                    raise _HttpError(HTTPStatus.NOT_FOUND, f"toxic not found: {toxic}") from None
                return HTTPStatus.NO_CONTENT, None
            case "POST", ["reset"]:
                self.server.proxies.reset()
                return HTTPStatus.NO_CONTENT, None
        raise _HttpError(HTTPStatus.NOT_FOUND, f"no route {method} {self.path}")

    def _proxy(self, name: str) -> FaultProxy:
        try:
            return self.server.proxies[name]
        except KeyError:
            raise _HttpError(HTTPStatus.NOT_FOUND, f"proxy not found: {name}") from None

    def _toxic(self, proxy: FaultProxy, name: str) -> Toxic:
        for toxic in proxy.toxics():
            if toxic.name == name:
                return toxic
        raise _HttpError(HTTPStatus.NOT_FOUND, f"toxic not found: {name}")

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as exc:
            raise _HttpError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _HttpError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _set_enabled(self, proxy: FaultProxy) -> dict[str, Any]:
        enabled = self._body().get("enabled")
        if not isinstance(enabled, bool):
            raise _HttpError(HTTPStatus.BAD_REQUEST, 'give {"enabled": true} or {"enabled": false}')
        if enabled:
            proxy.enable()
        else:
            proxy.disable()
        return proxy_json(proxy)

    def _add_toxic(self, proxy: FaultProxy) -> dict[str, Any]:
        body = self._body()
        unknown = sorted(set(body) - _TOXIC_FIELDS)
        attributes = body.get("attributes", {})
        stream = body.get("stream", "downstream")
        if unknown or not isinstance(attributes, dict) or stream not in STREAMS:
            raise _HttpError(
                HTTPStatus.BAD_REQUEST,
                f"a toxic is {{{', '.join(sorted(_TOXIC_FIELDS))}}} with an attributes object "
                f"and a stream among {', '.join(STREAMS)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
            )
        try:
            toxic = make_toxic(
                str(body.get("type")),
                body.get("name"),
                stream,
                body.get("toxicity", 1.0),
                **attributes,
            )
        except (FaultConfigError, TypeError) as exc:  # TypeError: an attribute named `name`
            raise _HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        try:
            proxy.add_toxic(
                toxic.type, toxic.name, toxic.stream, toxic.toxicity, **toxic.attributes
            )
        except FaultConfigError:  # the one check left: the name is taken
            raise _HttpError(HTTPStatus.CONFLICT, f"toxic already exists: {toxic.name}") from None
        return toxic_json(toxic)


class FaultControlServer:
    """Serves the control API for a set of proxies on 127.0.0.1, in a daemon thread."""

    def __init__(self, proxies: ProxySet, port: int = 0) -> None:
        self._server = _Server(port, proxies)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(_POLL_S,),
            name="fault-control",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and end the thread."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
