"""P1.2's "no cascading failures", at the API: do requests fail while Redis is down?

The application runs in process with its Redis URL pointed at a fault proxy in front of the
real Redis; a seeded tenant's requests (product and order lists and reads, the tenant, an
order placed) go through it before, during and after the proxy is taken down. Everything
that uses Redis on the way (the rate limiter, the resilient cache behind the tenant and
flag lookups, cache invalidations) must degrade rather than fail the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from rustok_ref.config import Settings
from rustok_ref.lab.experiments.inprocess import api_client
from rustok_ref.lab.faults import FaultProxy
from rustok_ref.lab.seed import SeededTenant

PHASES = ("before", "outage", "after")


@dataclass
class PhaseRequests:
    """Status codes answered in one phase."""

    statuses: list[int] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Answers that are not a success: 5xx, and 429 or 4xx a healthy run never gives."""
        return sum(status >= 400 for status in self.statuses)

    @property
    def error_percent(self) -> float:
        return 100.0 if not self.statuses else 100 * self.failed / len(self.statuses)


def through_proxy(redis_url: str, proxy: FaultProxy) -> str:
    """`redis_url` with its host and port replaced by the proxy's."""
    parts = urlsplit(redis_url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))


async def requests_through_outage(
    settings: Settings, shop: SeededTenant, proxy: FaultProxy, *, rounds: int
) -> dict[str, PhaseRequests]:
    """`rounds` rounds of the request mix per phase, the proxy down in the middle one."""
    assert settings.redis_url is not None
    proxied = settings.model_copy(update={"redis_url": through_proxy(settings.redis_url, proxy)})
    phases = {phase: PhaseRequests() for phase in PHASES}
    async with api_client(proxied, shop) as (_, client):
        for phase in PHASES:
            if phase == "outage":
                proxy.disable()
            try:
                for _ in range(rounds):
                    phases[phase].statuses += await _round(client, shop)
            finally:
                proxy.enable()
    return phases


async def _round(client: httpx.AsyncClient, shop: SeededTenant) -> Sequence[int]:
    answers = [
        await client.get("/products"),
        await client.get(f"/products/{shop.product_ids[0]}"),
        await client.get("/orders"),
        await client.get(f"/orders/{shop.order_ids[0]}"),
        await client.get("/tenant"),
        await client.post(
            "/orders", json={"lines": [{"product_id": str(shop.product_ids[0]), "quantity": 1}]}
        ),
    ]
    return [answer.status_code for answer in answers]
