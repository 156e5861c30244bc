"""REST /tenant over a real server: every role reads its own tenant, only an admin renames it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from api_support import ApiServer, TenantKeys, make_tenant

from rustok_ref.api.auth import Role
from rustok_ref.config import Settings

PROBLEM = "application/problem+json"
CACHE_WAIT_S = 30.0  # liveness bound for the tenant caches' invalidation


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture(scope="module")
def renamed(app_settings: Settings) -> TenantKeys:
    """A tenant of this module's own, so renaming it disturbs no other test."""
    return make_tenant(app_settings, "Before")


def test_every_role_reads_its_own_tenant(api_server: ApiServer, tenant_a: TenantKeys) -> None:
    for key in tenant_a.keys.values():
        with api_server.client(tenant_a.slug, key) as client:
            answer = client.get("/tenant")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "id": str(tenant_a.id),
            "slug": tenant_a.slug,
            "name": "Tenant A",
            "domain": None,
            "is_active": True,
            "version": 1,
        }


def test_an_admin_renames_the_tenant_and_a_stale_version_is_409(
    api_server: ApiServer, renamed: TenantKeys
) -> None:
    with api_server.client(renamed.slug, renamed.admin) as admin:
        answer = admin.patch("/tenant", json={"name": "After", "expected_version": 1})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["name"], answer.json()["version"]) == ("After", 2)
        problem(admin.patch("/tenant", json={"name": "Again", "expected_version": 1}), 409)
        deadline = time.monotonic() + CACHE_WAIT_S
        while admin.get("/tenant").json()["name"] != "After":  # the cached tenant is evicted
            assert time.monotonic() < deadline, "the renamed tenant is never read back"
            time.sleep(0.1)


@pytest.mark.parametrize("role", ["staff", "customer"])
def test_only_an_admin_renames(role: str, api_server: ApiServer, tenant_a: TenantKeys) -> None:
    with api_server.client(tenant_a.slug, tenant_a.keys[Role(role)]) as client:
        assert problem(client.patch("/tenant", json={"name": "Mine"}), 403)["code"] == "FORBIDDEN"
        assert client.get("/tenant").json()["name"] == "Tenant A"


@pytest.mark.parametrize(
    "body", [{"name": "   "}, {"name": 7}, {}, {"name": "x", "slug": "stolen"}, {"name": "x" * 256}]
)
def test_a_bad_rename_is_400_and_changes_nothing(
    body: dict[str, object], api_server: ApiServer, tenant_a: TenantKeys
) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as admin:
        problem(admin.patch("/tenant", json=body), 400)
        assert admin.get("/tenant").json()["version"] == 1


def test_a_key_under_another_tenants_header_is_403(
    api_server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys
) -> None:
    with api_server.client(tenant_b.slug, tenant_a.admin) as crossed:
        problem(crossed.get("/tenant"), 403)
        problem(crossed.patch("/tenant", json={"name": "Taken"}), 403)
    with api_server.client(tenant_b.slug, tenant_b.admin) as own:
        assert own.get("/tenant").json()["name"] == "Tenant B"
