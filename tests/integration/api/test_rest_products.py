"""REST /products over a real server: the lifecycle, roles, bad input, and the read index's
pages and filters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import ApiServer, TenantKeys

PROBLEM = "application/problem+json"
INDEX_WAIT_S = 30.0  # liveness bound for the relay + view, far above their lag


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    return body


def new_body(**changes: object) -> dict[str, Any]:
    """A valid create body (a fresh SKU unless given) with `changes` applied."""
    body: dict[str, Any] = {
        "sku": f"p-{uuid.uuid4().hex[:10]}",
        "title": "Teapot",
        "price": {"amount": 1999, "currency": "EUR"},
        "stock": 10,
    }
    return body | changes


def walk(client: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a list, page by page, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = params if cursor is None else {**params, "cursor": cursor}
        page = client.get("/products", params=query)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def wait_for(client: httpx.Client, params: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The list once the read index holds `count` items matching `params`."""
    deadline = time.monotonic() + INDEX_WAIT_S
    while len(items := walk(client, params)) != count:
        assert time.monotonic() < deadline, f"the index shows {len(items)} of {count}"
        time.sleep(0.1)
    return items


@pytest.fixture
def staff(api_server: ApiServer, tenant_a: TenantKeys) -> Iterator[httpx.Client]:
    with api_server.client(tenant_a.slug, tenant_a.staff) as client:
        yield client


def test_a_product_goes_draft_published_archived_draft(staff: httpx.Client) -> None:
    created = staff.post("/products", json=new_body(title="Mug"))
    assert created.status_code == 201, created.text
    product = created.json()
    assert (product["status"], product["version"], product["price"]) == (
        "draft",
        1,
        {"amount": 1999, "currency": "EUR"},
    )
    path = f"/products/{product['id']}"
    assert staff.get(path).json() == product
    statuses = [staff.post(f"{path}/{step}").json()["status"] for step in ("publish", "archive")]
    assert statuses == ["published", "archived"]
    refused = problem(staff.post(f"{path}/publish"), 409)
    assert refused["kind"] == "invalid_transition"
    restored = staff.post(f"{path}/restore").json()
    assert (restored["status"], restored["version"]) == ("draft", 4)


def test_patch_changes_fields_and_refuses_a_stale_version(staff: httpx.Client) -> None:
    product = staff.post("/products", json=new_body()).json()
    path = f"/products/{product['id']}"
    patched = staff.patch(path, json={"title": "Big teapot", "stock": 3, "expected_version": 1})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["title"], patched.json()["stock"], patched.json()["version"]) == (
        "Big teapot",
        3,
        2,
    )
    problem(staff.patch(path, json={"stock": 9, "expected_version": 1}), 409)
    problem(staff.patch(path, json={}), 400)
    assert staff.get(path).json()["stock"] == 3


def test_a_taken_sku_is_409(staff: httpx.Client) -> None:
    body = new_body()
    assert staff.post("/products", json=body).status_code == 201
    assert problem(staff.post("/products", json=body), 409)["kind"] == "conflict"


def test_a_customer_cannot_create_products(
    api_server: ApiServer, tenant_a: TenantKeys, staff: httpx.Client
) -> None:
    body = new_body()
    with api_server.client(tenant_a.slug, tenant_a.customer) as customer:
        assert problem(customer.post("/products", json=body), 403)["code"] == "FORBIDDEN"
        product = staff.post("/products", json=body).json()  # the SKU is still free
        problem(customer.post(f"/products/{product['id']}/publish"), 403)
        assert customer.get(f"/products/{product['id']}").json()["status"] == "draft"


BAD_BODIES = {
    "float amount": {"price": {"amount": 19.99, "currency": "EUR"}},
    "negative amount": {"price": {"amount": -1, "currency": "EUR"}},
    "lower-case currency": {"price": {"amount": 1, "currency": "eur"}},
    "negative stock": {"stock": -1},
    "bool stock": {"stock": True},
    "blank title": {"title": "  "},
    "unknown field": {"colour": "red"},
}


@pytest.mark.parametrize("changes", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_product_bodies_are_400_and_write_nothing(
    changes: dict[str, object], staff: httpx.Client
) -> None:
    body = new_body(**changes)
    assert problem(staff.post("/products", json=body), 400)["fields"]
    assert staff.post("/products", json=new_body(sku=body["sku"])).status_code == 201


def test_unknown_and_other_tenants_products_are_404(
    api_server: ApiServer, tenant_b: TenantKeys, staff: httpx.Client
) -> None:
    with api_server.client(tenant_b.slug, tenant_b.staff) as b_staff:
        theirs = b_staff.post("/products", json=new_body()).json()
    for product_id in (theirs["id"], str(uuid.uuid4())):
        problem(staff.get(f"/products/{product_id}"), 404)
        problem(staff.patch(f"/products/{product_id}", json={"stock": 0}), 404)
    problem(staff.get("/products/not-a-uuid"), 400)


def test_a_key_under_another_tenants_header_is_403(
    api_server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys
) -> None:
    with api_server.client(tenant_b.slug, tenant_a.staff) as crossed:
        problem(crossed.get("/products"), 403)
        problem(crossed.post("/products", json=new_body()), 403)


def test_pages_walk_every_item_exactly_once_and_filters_apply(staff: httpx.Client) -> None:
    prefix = f"pg{uuid.uuid4().hex[:8]}-"
    made = [staff.post("/products", json=new_body(sku=f"{prefix}{n:02}")).json() for n in range(7)]
    for product in made[:2]:
        assert staff.post(f"/products/{product['id']}/publish").status_code == 200
    everything = wait_for(staff, {"sku": prefix, "limit": 3}, 7)
    assert [item["id"] for item in everything] == [product["id"] for product in made]
    first = staff.get("/products", params={"sku": prefix, "limit": 3}).json()
    assert len(first["items"]) == 3 and first["next_cursor"] is not None
    published = wait_for(staff, {"sku": prefix, "status": "published", "limit": 1}, 2)
    assert {item["id"] for item in published} == {product["id"] for product in made[:2]}
    assert walk(staff, {"sku": prefix + "none"}) == []


def test_the_list_is_the_callers_tenant_only(
    api_server: ApiServer, tenant_b: TenantKeys, staff: httpx.Client
) -> None:
    prefix = f"iso{uuid.uuid4().hex[:8]}-"
    ours = staff.post("/products", json=new_body(sku=f"{prefix}a")).json()
    with api_server.client(tenant_b.slug, tenant_b.staff) as b_staff:
        theirs = b_staff.post("/products", json=new_body(sku=f"{prefix}b")).json()
        assert [item["id"] for item in wait_for(b_staff, {"sku": prefix}, 1)] == [theirs["id"]]
    assert [item["id"] for item in wait_for(staff, {"sku": prefix}, 1)] == [ours["id"]]


@pytest.mark.parametrize(
    "query", [{"cursor": "bm9wZQ"}, {"cursor": "%%%"}, {"limit": 0}, {"limit": 101}]
)
def test_a_malformed_cursor_or_limit_is_400(query: dict[str, Any], staff: httpx.Client) -> None:
    problem(staff.get("/products", params=query), 400)
