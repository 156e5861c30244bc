"""The cached `GET /products/{id}` over real servers: a write is read at once through the
server that made it, and through another server (same database and Redis) because of the
invalidation channel, not the TTL; a cached answer still checks key, role and tenant; the
hits show on /metrics; the lab's cache flush empties it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import (
    ApiServer,
    TenantKeys,
    create_product,
    eventually,
    expect_problem,
    read_metric,
    run_server,
)
from sqlalchemy import update

from rustok_ref.bootstrap import wire
from rustok_ref.config import Settings
from rustok_ref.storage.tables import products
from rustok_ref.storage.unit_of_work import UnitOfWork

LONG_TTL = {"RUSTOK_PRODUCT_CACHE_TTL_S": "3600"}  # only an invalidation refreshes an entry


@pytest.fixture(scope="module")
def two_servers(
    app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, ApiServer]]:
    logs: Path = tmp_path_factory.mktemp("api-pair")
    with (
        run_server(app_settings, logs, env=LONG_TTL) as first,
        run_server(app_settings, logs, env=LONG_TTL) as second,
    ):
        yield first, second


@pytest.fixture
def staff(api_server: ApiServer, tenant_a: TenantKeys) -> Iterator[httpx.Client]:
    with api_server.client(tenant_a.slug, tenant_a.staff) as client:
        yield client


def created(client: httpx.Client) -> str:
    return f"/products/{create_product(client)}"


def test_every_write_is_read_at_once(staff: httpx.Client) -> None:
    path = created(staff)
    assert staff.get(path).json()["title"] == "Kettle"  # now cached
    patched = staff.patch(path, json={"title": "Teapot"}).json()
    assert staff.get(path).json() == patched
    for step, status in (("publish", "published"), ("archive", "archived"), ("restore", "draft")):
        moved = staff.post(f"{path}/{step}").json()
        assert moved["status"] == status
        assert staff.get(path).json() == moved


def test_a_cached_answer_still_checks_the_caller(
    api_server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys, staff: httpx.Client
) -> None:
    path = created(staff)
    assert staff.get(path).status_code == 200  # now cached
    with api_server.client(tenant_a.slug, "not-a-key") as stranger:
        expect_problem(stranger.get(path), 401)
    with api_server.client(tenant_b.slug, tenant_b.staff) as other_tenant:
        expect_problem(other_tenant.get(path), 404)
    with api_server.client(tenant_b.slug, tenant_a.staff) as wrong_pair:
        expect_problem(wrong_pair.get(path), 403)  # another tenant's key


def test_hits_and_misses_show_on_metrics(api_server: ApiServer, staff: httpx.Client) -> None:
    path = created(staff)
    for _ in range(3):
        assert staff.get(path).status_code == 200

    def sample(name: str) -> float:
        return read_metric(staff, name) or 0.0

    eventually(lambda: sample("rustok_product_cache_hits_total") >= 2, "the hits on /metrics")
    assert sample("rustok_product_cache_misses_total") >= 1


def test_a_write_through_one_server_is_seen_through_the_other(
    two_servers: tuple[ApiServer, ApiServer], tenant_a: TenantKeys
) -> None:
    first, second = two_servers
    with (
        first.client(tenant_a.slug, tenant_a.staff) as through_first,
        second.client(tenant_a.slug, tenant_a.staff) as through_second,
    ):
        path = created(through_first)
        assert through_second.get(path).json()["title"] == "Kettle"  # cached for an hour
        through_first.patch(path, json={"title": "Teapot"})
        eventually(
            lambda: through_second.get(path).json()["title"] == "Teapot",
            "the other server hears the invalidation",
        )


def _retitle_behind_the_api(settings: Settings, tenant_id: uuid.UUID, path: str) -> None:
    """Change the product's title in PostgreSQL directly, so no invalidation is sent."""

    async def retitle() -> None:
        product_id = uuid.UUID(path.rsplit("/", 1)[1])
        async with (
            wire(settings) as container,
            UnitOfWork(container.sessions, tenant_id=tenant_id) as uow,
        ):
            await uow.session.execute(
                update(products).where(products.c.id == product_id).values(title="Behind")
            )
            await uow.commit()

    asyncio.run(retitle())


def test_the_lab_flush_empties_the_product_cache(
    app_settings: Settings, two_servers: tuple[ApiServer, ApiServer], tenant_a: TenantKeys
) -> None:
    server, _ = two_servers
    with (
        server.client(tenant_a.slug, tenant_a.staff) as staff,
        server.client(tenant_a.slug, tenant_a.admin) as admin,
    ):
        path = created(staff)
        assert staff.get(path).json()["title"] == "Kettle"  # cached for an hour
        _retitle_behind_the_api(app_settings, tenant_a.id, path)
        assert staff.get(path).json()["title"] == "Kettle"  # still the cached record
        flushed = admin.post("/admin/caches/flush")
        assert flushed.json() == {"flushed": ["tenant", "flags", "products"]}
        assert staff.get(path).json()["title"] == "Behind"
