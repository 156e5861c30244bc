"""The API application in process, for measurements that go through it: its lifespan runs
(services wired, guards and middleware in place) and an httpx client talks to it over ASGI,
with a seeded tenant's headers. Background workers and saga recovery stay off unless asked,
so the only work is the requests' own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from rustok_ref.api.app import create_app
from rustok_ref.config import Settings
from rustok_ref.lab.seed import SeededTenant


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, shop: SeededTenant, *, role: str = "admin", workers: bool = False
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The running application and a client sending `shop`'s tenant and `role`'s key."""
    app = create_app(
        settings.model_copy(
            update={
                "api_run_workers": workers,
                "api_recover_sagas": False,
                "metrics_refresh_s": 3600.0,
            }
        )
    )
    headers = {"X-Tenant-ID": shop.slug, "X-API-Key": shop.keys[role]}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://lab", headers=headers) as client,
    ):
        yield app, client
