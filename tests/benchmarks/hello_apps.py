"""uvicorn factories for the API benchmarks (`--factory hello_apps:<name>`).

`api_with_hello`: the real application (lifespan, middleware, routes) plus `/hello`, which
does no work, so product GET / hello is what a route's own work costs through the same
stack. `bare_hello`: `/hello` on a bare FastAPI app, what the stack itself costs.
"""

from __future__ import annotations

from fastapi import FastAPI

from rustok_ref.api.app import serve_app

HELLO = {"hello": "world"}


async def hello() -> dict[str, str]:
    return HELLO


def api_with_hello() -> FastAPI:
    app = serve_app()
    app.add_api_route("/hello", hello, methods=["GET"])
    return app


def bare_hello() -> FastAPI:
    app = FastAPI()
    app.add_api_route("/hello", hello, methods=["GET"])
    return app
