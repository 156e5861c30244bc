"""The API under faults and abuse: per-tenant rate limits, Redis down (the limiter fails
open, reads go on through the in-process caches) and PostgreSQL down mid-traffic (503 with
Retry-After, never a 500, never a partial write).

Each fault server talks to the real services through a `FaultProxy`, so the outage is a
real refused or reset TCP connection, not a stubbed client.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import (
    ApiServer,
    TenantKeys,
    expect_problem,
    make_tenant,
    product_body,
    read_metric,
    run_server,
    tenant_counts,
)
from fixtures.outbox_pipeline import through
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import postgres_proxy_for, redis_proxy_for

from rustok_ref.config import Settings
from rustok_ref.lab.faults import FaultProxy
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import products

RECOVERY_S = 60.0  # liveness bound for a server to use a dependency again after an outage


def retry_after(answer: httpx.Response) -> int:
    """The Retry-After seconds of a 429/503, which must be a whole number >= 1."""
    value = int(answer.headers["Retry-After"])
    assert value >= 1
    return value


# Rate limits

BURST = 3


@pytest.fixture(scope="module")
def limited_server(
    app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    env = {"RUSTOK_RATE_LIMIT_PER_S": "1", "RUSTOK_RATE_LIMIT_BURST": str(BURST)}
    with run_server(app_settings, tmp_path_factory.mktemp("limited"), env=env) as server:
        yield server


def test_a_tenant_over_its_burst_gets_429_and_others_do_not(
    limited_server: ApiServer, app_settings: Settings
) -> None:
    noisy, quiet = make_tenant(app_settings, "Noisy"), make_tenant(app_settings, "Quiet")
    with limited_server.client(noisy.slug, noisy.customer) as client:
        answers = [client.get("/tenant") for _ in range(BURST + 2)]
    assert [answer.status_code for answer in answers[:BURST]] == [200] * BURST
    refused = answers[-1]  # a token comes back each second: two past the burst is enough
    body = expect_problem(refused, 429)
    assert body["code"] == "RATE_LIMIT_EXCEEDED"
    assert body["retry_after"] == retry_after(refused)
    with limited_server.client(quiet.slug, quiet.customer) as other:
        assert other.get("/tenant").status_code == 200


def test_unauthenticated_floods_spend_the_named_tenant_tokens(
    limited_server: ApiServer, app_settings: Settings
) -> None:
    """The limiter runs before the key check, so guessing keys is rate limited too."""
    target = make_tenant(app_settings, "Target")
    with limited_server.client(target.slug, "rk_000000000000_guess") as guesser:
        statuses = [guesser.get("/tenant").status_code for _ in range(BURST + 2)]
    assert statuses[:BURST] == [401] * BURST
    assert statuses[-1] == 429


# Redis unreachable


@pytest.fixture
def redis_down_server(
    app_settings: Settings, tmp_path: Path
) -> Iterator[tuple[ApiServer, FaultProxy]]:
    assert app_settings.redis_url is not None
    with redis_proxy_for(app_settings.redis_url) as proxy:
        env = {"RUSTOK_REDIS_URL": through(app_settings.redis_url, proxy)}
        with run_server(app_settings, tmp_path, env=env) as server:
            yield server, proxy


def failed_open(client: httpx.Client) -> float:
    """The limiter's fail-open count on /metrics (copied there about once a second)."""
    value = read_metric(client, "rustok_ratelimit_failed_open_total")
    assert value is not None, "the limiter's fail-open counter is not on /metrics"
    return value


def test_with_redis_down_requests_are_served_and_fail_open_is_counted(
    redis_down_server: tuple[ApiServer, FaultProxy], tenant_a: TenantKeys
) -> None:
    server, proxy = redis_down_server
    with server.client(tenant_a.slug, tenant_a.staff) as client:
        created = client.post("/products", json=product_body())
        assert created.status_code == 201, created.text
        product = created.json()
        assert client.get("/tenant").status_code == 200  # tenant and key now cached
        before = failed_open(client)
        proxy.disable()
        answer = client.get("/tenant")
        assert answer.json()["id"] == str(tenant_a.id), (answer.status_code, answer.text)
        assert client.get(f"/products/{product['id']}").json() == product
        assert proxy.stats().refused > 0
        deadline = time.monotonic() + RECOVERY_S
        while failed_open(client) < before + 2:
            assert time.monotonic() < deadline, "the fail-open count never rose"
            time.sleep(0.2)


# PostgreSQL unreachable


@pytest.fixture
def db_down_server(
    app_settings: Settings, tmp_path: Path
) -> Iterator[tuple[ApiServer, FaultProxy]]:
    assert app_settings.database_url is not None
    with postgres_proxy_for(app_settings.database_url) as proxy:
        env = {"RUSTOK_DATABASE_URL": through(app_settings.database_url, proxy)}
        with run_server(app_settings, tmp_path, env=env) as server:
            yield server, proxy


async def skus_stored(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, skus: list[str]
) -> dict[str, int]:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        rows = await uow.session.execute(
            select(products.c.sku, func.count())
            .where(products.c.tenant_id == tenant_id, products.c.sku.in_(skus))
            .group_by(products.c.sku)
        )
        found = {sku: count for sku, count in rows.all()}
    return {sku: found.get(sku, 0) for sku in skus}


def assert_unavailable(answer: httpx.Response) -> None:
    body = expect_problem(answer, 503)
    assert body["code"] == "SERVICE_UNAVAILABLE"
    retry_after(answer)


async def test_database_down_mid_traffic_is_503_and_writes_all_or_nothing(
    db_down_server: tuple[ApiServer, FaultProxy],
    tenant_a: TenantKeys,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    server, proxy = db_down_server
    answered: dict[str, int] = {}
    with server.client(tenant_a.slug, tenant_a.staff) as client:
        warm = client.post("/products", json=product_body()).json()
        counts_before = await tenant_counts(sessions, tenant_a.id)
        for step in range(12):
            if step == 4:
                proxy.disable()
            if step == 8:
                proxy.add_toxic("reset_peer", stream="upstream")
                proxy.enable()
            body = product_body()
            answered[str(body["sku"])] = client.post("/products", json=body).status_code
            if step >= 4:
                assert_unavailable(client.get(f"/products/{uuid.uuid4()}"))
                assert_unavailable(client.post(f"/products/{warm['id']}/publish"))
        proxy.clear_toxics()
        deadline = time.monotonic() + RECOVERY_S
        while (recovered := client.get(f"/products/{warm['id']}")).status_code != 200:
            assert_unavailable(recovered)
            assert time.monotonic() < deadline, "the API never reconnected to PostgreSQL"
            await asyncio.sleep(0.2)
    statuses = list(answered.values())
    assert statuses[:4] == [201] * 4 and statuses[4:] == [503] * 8, answered
    stored = await skus_stored(sessions, tenant_a.id, list(answered))
    assert stored == {sku: int(status == 201) for sku, status in answered.items()}
    assert await tenant_counts(sessions, tenant_a.id) == (counts_before[0] + 4, counts_before[1])
    assert recovered.json()["status"] == warm["status"]
