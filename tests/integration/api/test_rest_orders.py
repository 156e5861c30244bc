"""REST /orders over a real server: the review's P2.2 flow end to end, the transitions and
their refusals, paying synchronously and in the background, and the read index's pages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import (
    LIVENESS_S,
    ApiServer,
    TenantKeys,
    create_product,
    eventually,
    make_tenant,
    run_server,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce.events import OrderPaid
from rustok_ref.config import Settings
from rustok_ref.storage import UnitOfWork
from rustok_ref.storage.tables import outbox

PROBLEM = "application/problem+json"


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    return body


def product(staff: httpx.Client, *, publish: bool = True) -> str:
    """A new product of the staff's tenant at 12.50 EUR (published unless asked otherwise)."""
    return create_product(
        staff, publish=publish, price={"amount": 1250, "currency": "EUR"}, stock=100
    )


def place(customer: httpx.Client, product_id: str, quantity: int = 2) -> dict[str, Any]:
    placed = customer.post(
        "/orders", json={"lines": [{"product_id": product_id, "quantity": quantity}]}
    )
    assert placed.status_code == 201, placed.text
    order: dict[str, Any] = placed.json()
    return order


def all_orders(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = params if cursor is None else {**params, "cursor": cursor}
        page = client.get("/orders", params=query)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


@pytest.fixture
def staff(api_server: ApiServer, tenant_a: TenantKeys) -> Iterator[httpx.Client]:
    with api_server.client(tenant_a.slug, tenant_a.staff) as client:
        yield client


@pytest.fixture
def customer(api_server: ApiServer, tenant_a: TenantKeys) -> Iterator[httpx.Client]:
    with api_server.client(tenant_a.slug, tenant_a.customer) as client:
        yield client


async def test_the_whole_flow_pays_the_order_and_reaches_the_outbox_and_the_index(
    api_server: ApiServer,
    staff: httpx.Client,
    customer: httpx.Client,
    tenant_a: TenantKeys,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order = place(customer, product(staff), quantity=2)
    assert (order["status"], order["total"]) == ("draft", {"amount": 2500, "currency": "EUR"})
    path = f"/orders/{order['id']}"
    headers = {"X-Tenant-ID": tenant_a.slug, "X-API-Key": tenant_a.customer}
    async with httpx.AsyncClient(base_url=api_server.base_url, headers=headers) as client:
        assert (await client.post(f"{path}/submit")).json()["status"] == "pending_payment"
        paid = await client.post(f"{path}/pay", timeout=LIVENESS_S)
        assert paid.status_code == 200, paid.text
        assert (paid.json()["status"], paid.json()["order_id"]) == ("paid", order["id"])
        now = (await client.get(path)).json()
    assert now["status"] == "paid" and now["payment_id"] is not None

    async with UnitOfWork(sessions, tenant_id=tenant_a.id) as uow:
        types = (
            await uow.session.scalars(
                select(outbox.c.type).where(outbox.c.aggregateid == uuid.UUID(order["id"]))
            )
        ).all()
    assert OrderPaid.event_spec is not None
    assert OrderPaid.event_spec.event_type in types

    def listed_paid() -> bool:
        return any(
            item["id"] == order["id"] and item["status"] == "paid"
            for item in all_orders(customer, status="paid", limit=100)
        )

    eventually(listed_paid, "the read index lists the order as paid")


def test_fulfilment_is_staff_only_and_follows_the_states(
    staff: httpx.Client, customer: httpx.Client
) -> None:
    path = f"/orders/{place(customer, product(staff))['id']}"
    problem(staff.post(f"{path}/ship"), 409)  # a draft is not shipped
    customer.post(f"{path}/submit")
    assert customer.post(f"{path}/pay").json()["status"] == "paid"
    assert problem(customer.post(f"{path}/ship"), 403)["code"] == "FORBIDDEN"
    assert staff.post(f"{path}/ship").json()["status"] == "shipped"
    assert staff.post(f"{path}/deliver").json()["status"] == "delivered"
    problem(customer.post(f"{path}/cancel", json={"reason": "too late"}), 409)


def test_submitting_or_paying_twice_is_409(staff: httpx.Client, customer: httpx.Client) -> None:
    path = f"/orders/{place(customer, product(staff))['id']}"
    problem(customer.post(f"{path}/pay"), 409)  # a draft cannot be paid
    assert customer.post(f"{path}/submit").status_code == 200
    problem(customer.post(f"{path}/submit"), 409)
    assert customer.post(f"{path}/pay").json()["status"] == "paid"
    problem(customer.post(f"{path}/pay"), 409)
    assert customer.get(path).json()["status"] == "paid"


def test_cancel_keeps_the_reason(staff: httpx.Client, customer: httpx.Client) -> None:
    path = f"/orders/{place(customer, product(staff))['id']}"
    cancelled = customer.post(f"{path}/cancel", json={"reason": "changed my mind"})
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == (
        "cancelled",
        "changed my mind",
    )
    problem(customer.post(f"{path}/submit"), 409)


def test_bad_orders_are_refused_and_place_nothing(
    api_server: ApiServer, tenant_b: TenantKeys, staff: httpx.Client, customer: httpx.Client
) -> None:
    with api_server.client(tenant_b.slug, tenant_b.staff) as b_staff:
        theirs = product(b_staff)
    ours = product(staff)
    before = {item["id"] for item in all_orders(customer, limit=100)}
    bad: dict[int, list[dict[str, Any]]] = {
        400: [
            {"lines": [{"product_id": ours, "quantity": -1}]},
            {"lines": [{"product_id": ours, "quantity": 1.0}]},
            {"lines": []},
            {"lines": [{"product_id": product(staff, publish=False), "quantity": 1}]},
            {"lines": [{"product_id": ours, "quantity": 1}], "coupon": "FREE"},
        ],
        404: [
            {"lines": [{"product_id": theirs, "quantity": 1}]},
            {"lines": [{"product_id": str(uuid.uuid4()), "quantity": 1}]},
        ],
    }
    for status, bodies in bad.items():
        for body in bodies:
            problem(customer.post("/orders", json=body), status)
    good = place(customer, ours)["id"]  # written after any bad one could have been

    def listed() -> set[str]:
        ids = {item["id"] for item in all_orders(customer, limit=100)}
        return ids if good in ids else set()

    assert eventually(listed, "the good order is listed") - before == {good}


def test_unknown_and_malformed_ids(customer: httpx.Client) -> None:
    problem(customer.get(f"/orders/{uuid.uuid4()}"), 404)
    problem(customer.post(f"/orders/{uuid.uuid4()}/pay"), 404)
    problem(customer.get("/orders/12345"), 400)


def test_a_key_under_another_tenants_header_is_403(
    api_server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys
) -> None:
    with api_server.client(tenant_b.slug, tenant_a.customer) as crossed:
        problem(crossed.get("/orders"), 403)


@pytest.fixture(scope="module")
def fresh_tenant(app_settings: Settings) -> TenantKeys:
    return make_tenant(app_settings, "Pages")


def test_order_pages_walk_every_item_once_newest_first(
    api_server: ApiServer, fresh_tenant: TenantKeys
) -> None:
    with (
        api_server.client(fresh_tenant.slug, fresh_tenant.staff) as staff,
        api_server.client(fresh_tenant.slug, fresh_tenant.customer) as customer,
    ):
        product_id = product(staff)
        placed = [place(customer, product_id, quantity=1)["id"] for _ in range(5)]
        customer.post(f"/orders/{placed[0]}/submit")
        walked = eventually(
            lambda: len(items := all_orders(customer, limit=2)) == 5 and items,
            "all five orders are listed",
        )
        assert [item["id"] for item in walked] == placed[::-1]
        pending = eventually(
            lambda: all_orders(customer, status="pending_payment", limit=1),
            "the submitted order is listed as pending",
        )
        assert [item["id"] for item in pending] == [placed[0]]
        problem(customer.get("/orders", params={"cursor": "Zm9v"}), 400)


@pytest.fixture(scope="module")
def async_payer(
    app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """A server whose `pay` never waits for the saga: every payment answers 202."""
    log_dir = tmp_path_factory.mktemp("async-pay")
    with run_server(app_settings, log_dir, env={"RUSTOK_SAGA_SYNC_WAIT": "0"}) as server:
        yield server


def test_a_payment_in_progress_is_202_with_a_location_to_poll(
    async_payer: ApiServer, tenant_a: TenantKeys
) -> None:
    with (
        async_payer.client(tenant_a.slug, tenant_a.staff) as staff,
        async_payer.client(tenant_a.slug, tenant_a.customer) as customer,
    ):
        order_id = place(customer, product(staff))["id"]
        customer.post(f"/orders/{order_id}/submit")
        started = customer.post(f"/orders/{order_id}/pay")
        assert started.status_code == 202, started.text
        assert started.json()["status"] == "in_progress"
        location = started.headers["Location"]
        assert location == f"/orders/{order_id}/checkout/{started.json()['saga_id']}"
        eventually(lambda: customer.get(location).json()["status"] == "paid", "the saga ends")
        assert customer.get(f"/orders/{order_id}").json()["status"] == "paid"
        problem(customer.get(f"/orders/{uuid.uuid4()}/checkout/{started.json()['saga_id']}"), 404)
