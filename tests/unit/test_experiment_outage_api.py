"""P1.2.no-cascading-failures at the API: requests through a Redis outage (integration: the
in-process application, its Redis behind a real fault proxy)."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import pytest

from rustok_ref.config import Settings
from rustok_ref.lab.experiments import outage_api, shop
from rustok_ref.lab.faults import FaultProxy


def test_phase_error_percent_counts_failed_answers() -> None:
    phase = outage_api.PhaseRequests([200, 201, 503, 429])
    assert phase.failed == 2 and phase.error_percent == 50
    assert outage_api.PhaseRequests().error_percent == 100


def test_the_proxied_url_keeps_the_database_and_options() -> None:
    proxy = FaultProxy("redis", rng=random.Random(1))
    with proxy:
        url = outage_api.through_proxy("redis://127.0.0.1:6379/3?x=1", proxy)
        assert url == f"redis://127.0.0.1:{proxy.port}/3?x=1"


@pytest.mark.integration
async def test_requests_keep_succeeding_while_redis_is_down(app_settings: Settings) -> None:
    async with shop.open_shop(app_settings) as built:
        shops, _ = await shop.seed_paid(built, tenants=1, products=2, orders=1, seed=41)
    assert app_settings.redis_url is not None
    parts = urlsplit(app_settings.redis_url)
    proxy = FaultProxy("redis", upstream=(parts.hostname or "127.0.0.1", parts.port or 6379))
    with proxy:
        phases = await outage_api.requests_through_outage(app_settings, shops[0], proxy, rounds=3)
    assert [len(p.statuses) for p in phases.values()] == [18, 18, 18]
    assert phases["before"].failed == 0
    assert phases["outage"].error_percent <= 1, phases["outage"].statuses
