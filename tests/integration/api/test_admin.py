"""Admin and control endpoints against a real server: flags, the tenant's outbox and dead
letters, cache flush, provider faults, and the dispatcher burst under a small capacity."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import (
    ApiServer,
    TenantKeys,
    create_product,
    make_tenant,
    read_metric,
    run_server,
)
from sqlalchemy import select, update

from rustok_ref.bootstrap import wire
from rustok_ref.config import Settings
from rustok_ref.events import outbox
from rustok_ref.events.envelope import new_envelope
from rustok_ref.features.model import Feature
from rustok_ref.features.store import FeatureFlagChanged
from rustok_ref.storage.tables import outbox as outbox_table
from rustok_ref.storage.unit_of_work import UnitOfWork

PROBLEM = "application/problem+json"
SMALL_CAPACITY = 50
RELAY_BOUND_S = 30.0  # liveness only: the relay polls every 0.1 s


@pytest.fixture(scope="module")
def small_dispatcher_server(
    app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    env = {"RUSTOK_DISPATCHER_CAPACITY": str(SMALL_CAPACITY), "RUSTOK_DISPATCHER_POLICY": "reject"}
    with run_server(app_settings, tmp_path_factory.mktemp("api-burst"), env=env) as server:
        yield server


def _bury_event(settings: Settings, tenant_id: uuid.UUID) -> uuid.UUID:
    """A real event of the tenant, written straight to dead (as after the relay's last
    attempt), in one transaction so no relay publishes it first."""

    async def bury() -> uuid.UUID:
        payload = FeatureFlagChanged(
            tenant_id=tenant_id, feature="blog", enabled=True, rollout=100, variant=None, version=1
        )
        envelope = new_envelope(payload, tenant_id=tenant_id)
        async with (
            wire(settings) as container,
            UnitOfWork(container.sessions, tenant_id=tenant_id) as uow,
        ):
            await outbox.append(uow, envelope)
            await uow.session.execute(
                update(outbox_table)
                .where(outbox_table.c.id == envelope.id)
                .values(status="dead", attempts=5, last_error="XADD refused (test)")
            )
            await uow.commit()
        return envelope.id

    return asyncio.run(bury())


def _status(settings: Settings, tenant_id: uuid.UUID, event_id: uuid.UUID) -> str:
    async def read() -> str:
        async with (
            wire(settings) as container,
            UnitOfWork(container.sessions, tenant_id=tenant_id) as uow,
        ):
            query = select(outbox_table.c.status).where(outbox_table.c.id == event_id)
            status: str = (await uow.session.execute(query)).scalar_one()
        return status

    return asyncio.run(read())


ADMIN_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/admin/flags", None),
    ("PUT", "/admin/flags/blog", {"enabled": True}),
    ("GET", "/admin/events/outbox", None),
    ("GET", "/admin/events/dead-letters", None),
    ("POST", f"/admin/events/dead-letters/{uuid.uuid4()}/replay", None),
    ("POST", "/admin/caches/flush", None),
    ("POST", "/admin/events/burst", {"count": 1}),
    ("PUT", "/admin/providers/payment", {"failure_rate": 0.0, "latency_ms": 0}),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
@pytest.mark.parametrize("role", ["customer", "staff"])
def test_admin_routes_refuse_non_admin_keys(
    api_server: ApiServer,
    tenant_a: TenantKeys,
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    key = tenant_a.customer if role == "customer" else tenant_a.staff
    with api_server.client(tenant_a.slug, key) as client:
        answer = client.request(method, path, json=body)
    assert answer.status_code == 403
    assert answer.headers["content-type"] == PROBLEM


def test_flags_list_every_feature_with_stored_state_or_default(
    api_server: ApiServer, tenant_a: TenantKeys
) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        flags = {flag["feature"]: flag for flag in client.get("/admin/flags").json()}
    assert set(flags) == {feature.value for feature in Feature}
    assert flags["commerce"]["enabled"] is True and flags["commerce"]["version"] >= 1
    assert flags["forum"] == {"feature": "forum", "enabled": False, "rollout": 100, "version": 0}


def test_setting_a_flag_bumps_its_version_and_shows_in_the_list(
    api_server: ApiServer, tenant_b: TenantKeys
) -> None:
    with api_server.client(tenant_b.slug, tenant_b.admin) as client:
        first = client.put("/admin/flags/pages", json={"enabled": True, "rollout": 40})
        second = client.put("/admin/flags/pages", json={"enabled": False})
        listed = {flag["feature"]: flag for flag in client.get("/admin/flags").json()}
    assert first.status_code == second.status_code == 200
    assert first.json() == {"feature": "pages", "enabled": True, "rollout": 40, "version": 1}
    assert second.json() == {"feature": "pages", "enabled": False, "rollout": 100, "version": 2}
    assert listed["pages"] == second.json()


def test_unknown_feature_and_bad_rollout_are_refused(
    api_server: ApiServer, tenant_a: TenantKeys
) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        unknown = client.put("/admin/flags/teleport", json={"enabled": True})
        too_wide = client.put("/admin/flags/blog", json={"enabled": True, "rollout": 101})
    assert unknown.status_code == 400
    assert "path.feature" in unknown.json()["fields"]
    assert too_wide.status_code == 400
    assert "rollout" in too_wide.json()["fields"]


def test_outbox_summary_counts_the_tenants_events(
    api_server: ApiServer, app_settings: Settings
) -> None:
    tenant = make_tenant(app_settings, "Outbox counts")
    with api_server.client(tenant.slug, tenant.admin) as client:
        before = client.get("/admin/events/outbox").json()
        client.put("/admin/flags/blog", json={"enabled": True})
        after = client.get("/admin/events/outbox").json()
    assert before["pending"] + before["published"] >= 1  # at least the commerce flag's event
    assert after["pending"] + after["published"] == before["pending"] + before["published"] + 1
    assert after["dead"] == 0
    assert (after["oldest_pending_age_s"] is None) == (after["pending"] == 0)


def test_a_dead_letter_is_listed_and_replayed_then_published(
    api_server: ApiServer, app_settings: Settings, tenant_b: TenantKeys
) -> None:
    tenant = make_tenant(app_settings, "Dead letters")
    event_id = _bury_event(app_settings, tenant.id)
    with api_server.client(tenant.slug, tenant.admin) as client:
        letters = client.get("/admin/events/dead-letters", params={"limit": 10}).json()
        dead = client.get("/admin/events/outbox").json()["dead"]
        blocked = client.get("/readyz")
        with api_server.client(tenant_b.slug, tenant_b.admin) as other:
            foreign = other.post(f"/admin/events/dead-letters/{event_id}/replay")
        replayed = client.post(f"/admin/events/dead-letters/{event_id}/replay")
        again = client.post(f"/admin/events/dead-letters/{event_id}/replay")
    assert [letter["id"] for letter in letters] == [str(event_id)]
    assert letters[0]["type"] == "feature_flag.changed"
    assert letters[0]["last_error"] == "XADD refused (test)"
    assert dead == 1
    assert blocked.status_code == 503
    assert "dead_letters" in blocked.json()["failing"]
    assert foreign.status_code == 404  # another tenant's row is invisible
    assert replayed.status_code == 200
    assert replayed.json() == {"id": str(event_id), "status": "pending"}
    assert again.status_code == 404  # no longer dead
    deadline = time.monotonic() + RELAY_BOUND_S
    while _status(app_settings, tenant.id, event_id) != "published":
        assert time.monotonic() < deadline, "the relay never published the replayed event"
        time.sleep(0.2)
    with api_server.client() as client:
        assert client.get("/readyz").json()["checks"]["dead_letters"] == {"ok": True, "dead": 0}


def test_dead_letters_limit_is_validated(api_server: ApiServer, tenant_a: TenantKeys) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        answer = client.get("/admin/events/dead-letters", params={"limit": 0})
    assert answer.status_code == 400


def test_cache_flush_names_what_it_flushed(api_server: ApiServer, tenant_a: TenantKeys) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        answer = client.post("/admin/caches/flush")
        after = client.get("/admin/flags")  # the tenant resolves again from the database
    assert answer.status_code == 200
    assert answer.json() == {"flushed": ["tenant", "flags", "products"]}
    assert after.status_code == 200


def test_burst_within_capacity_is_all_accepted(
    small_dispatcher_server: ApiServer, tenant_a: TenantKeys
) -> None:
    with small_dispatcher_server.client(tenant_a.slug, tenant_a.admin) as client:
        answer = client.post("/admin/events/burst", json={"count": SMALL_CAPACITY})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["accepted"], body["rejected"], body["dropped"]) == (SMALL_CAPACITY, 0, 0)
    assert body["depth"] <= SMALL_CAPACITY


def test_burst_beyond_capacity_rejects_and_bounds_the_depth(
    small_dispatcher_server: ApiServer, tenant_a: TenantKeys
) -> None:
    count = SMALL_CAPACITY * 20
    with small_dispatcher_server.client(tenant_a.slug, tenant_a.admin) as client:
        answer = client.post("/admin/events/burst", json={"count": count})
        metrics = client.get("/metrics").text
    assert answer.status_code == 200
    body = answer.json()
    assert body["rejected"] > 0
    assert body["accepted"] + body["rejected"] == count
    assert 0 < body["accepted"] <= SMALL_CAPACITY
    assert body["depth"] <= SMALL_CAPACITY
    assert "rustok_dispatcher_depth" in metrics


def test_burst_count_is_validated(api_server: ApiServer, tenant_a: TenantKeys) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        zero = client.post("/admin/events/burst", json={"count": 0})
        huge = client.post("/admin/events/burst", json={"count": 100_001})
    assert zero.status_code == huge.status_code == 400


def test_provider_fault_is_set_and_validated(api_server: ApiServer, tenant_a: TenantKeys) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        shipping = client.put(
            "/admin/providers/shipping", json={"failure_rate": 0.25, "latency_ms": 5}
        )
        bad_rate = client.put("/admin/providers/payment", json={"failure_rate": 2, "latency_ms": 0})
        bad_latency = client.put(
            "/admin/providers/payment", json={"failure_rate": 0, "latency_ms": -1}
        )
        unknown = client.put("/admin/providers/teleport", json={"failure_rate": 0, "latency_ms": 0})
        client.put("/admin/providers/shipping", json={"failure_rate": 0, "latency_ms": 0})
    assert shipping.status_code == 200
    assert shipping.json() == {
        "provider": "shipping",
        "failure_rate": 0.25,
        "latency_ms": 5,
        "operations": ["create_shipment"],
    }
    assert bad_rate.status_code == bad_latency.status_code == unknown.status_code == 400


def _compensated(client: httpx.Client) -> float:
    return read_metric(client, "rustok_saga_outcomes_total", state="compensated") or 0.0


def test_a_payment_failure_rate_of_one_cancels_a_paid_order(
    api_server: ApiServer, app_settings: Settings
) -> None:
    tenant = make_tenant(app_settings, "Failing payments")
    with (
        api_server.client(tenant.slug, tenant.admin) as admin,
        api_server.client(tenant.slug, tenant.customer) as customer,
    ):
        fault = admin.put("/admin/providers/payment", json={"failure_rate": 1.0, "latency_ms": 0})
        assert fault.status_code == 200
        product_id = create_product(admin, publish=True)
        order = customer.post(
            "/orders", json={"lines": [{"product_id": product_id, "quantity": 1}]}
        )
        assert order.status_code == 201, order.text
        order_id = order.json()["id"]
        assert customer.post(f"/orders/{order_id}/submit").status_code == 200
        compensated_before = _compensated(admin)
        paid = customer.post(f"/orders/{order_id}/pay")
        checkout = paid.json()
        deadline = time.monotonic() + RELAY_BOUND_S
        while checkout["status"] == "in_progress":
            assert time.monotonic() < deadline, "the checkout never ended"
            time.sleep(0.2)
            checkout = customer.get(f"/orders/{order_id}/checkout/{checkout['saga_id']}").json()
        final = customer.get(f"/orders/{order_id}").json()
        compensated_after = _compensated(admin)
    assert checkout["status"] == "cancelled"
    assert "authorise" in checkout["reason"]
    assert final["status"] == "cancelled"
    assert compensated_after >= compensated_before + 1  # counted as the saga ended
