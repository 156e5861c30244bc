"""Tenant isolation and authentication at the API edge.

Every isolation check runs twice: against the normal server, and against one started with
`RUSTOK_TENANT_FILTER=false`, which drops the application's own `tenant_id` filter. The
second must pass too, because PostgreSQL's row-level security alone keeps tenant B's rows
out of a unit of work opened for tenant A.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from api_support import (
    ApiServer,
    TenantKeys,
    create_product,
    expect_problem,
    make_tenant,
    product_body,
    run_server,
)

from rustok_ref.config import Settings

INDEX_WAIT_S = 60.0  # liveness bound for the read index (relay + view), far above its lag


@dataclass(frozen=True)
class Seeded:
    """Tenant B's product and order, and what B itself reads for them."""

    product_id: str
    product_sku: str
    order_id: str
    product: dict[str, Any]
    order: dict[str, Any]


@pytest.fixture(scope="module", params=["tenant filter", "row-level security only"])
def server(
    request: pytest.FixtureRequest,
    api_server: ApiServer,
    app_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiServer]:
    if request.param == "tenant filter":
        yield api_server
        return
    log_dir = tmp_path_factory.mktemp("unfiltered")
    with run_server(app_settings, log_dir, env={"RUSTOK_TENANT_FILTER": "false"}) as unfiltered:
        yield unfiltered


def wait_listed(client: httpx.Client, path: str, item_id: str) -> None:
    """Wait until the read index lists `item_id` for the client's own tenant."""
    deadline = time.monotonic() + INDEX_WAIT_S
    while item_id not in {item["id"] for item in client.get(path).json()["items"]}:
        assert time.monotonic() < deadline, f"{item_id} never reached {path}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def seeded_b(api_server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys) -> Seeded:
    """A published product and a draft order in B (and a product in A, so A's lists are not
    empty by accident), each visible in its own tenant's read index."""
    with api_server.client(tenant_a.slug, tenant_a.staff) as a_staff:
        own = a_staff.post("/products", json=product_body()).json()
        wait_listed(a_staff, "/products?limit=100", own["id"])
    with (
        api_server.client(tenant_b.slug, tenant_b.staff) as staff,
        api_server.client(tenant_b.slug, tenant_b.customer) as customer,
    ):
        product_id = create_product(staff, publish=True)
        placed = customer.post(
            "/orders", json={"lines": [{"product_id": product_id, "quantity": 1}]}
        )
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["id"]
        wait_listed(staff, "/products?limit=100", product_id)
        wait_listed(staff, "/orders?limit=100", order_id)
        product = staff.get(f"/products/{product_id}").json()
        return Seeded(
            product_id, product["sku"], order_id, product, staff.get(f"/orders/{order_id}").json()
        )


def unchanged_in_b(server: ApiServer, tenant_b: TenantKeys, seeded: Seeded) -> None:
    with server.client(tenant_b.slug, tenant_b.admin) as b_admin:
        assert b_admin.get(f"/products/{seeded.product_id}").json() == seeded.product
        assert b_admin.get(f"/orders/{seeded.order_id}").json() == seeded.order


def test_a_cannot_read_b_by_id(server: ApiServer, tenant_a: TenantKeys, seeded_b: Seeded) -> None:
    with server.client(tenant_a.slug, tenant_a.admin) as a_admin:
        expect_problem(a_admin.get(f"/products/{seeded_b.product_id}"), 404)
        expect_problem(a_admin.get(f"/orders/{seeded_b.order_id}"), 404)


def test_a_never_lists_b(server: ApiServer, tenant_a: TenantKeys, seeded_b: Seeded) -> None:
    with server.client(tenant_a.slug, tenant_a.admin) as a_admin:
        listed_products = a_admin.get("/products?limit=100").json()
        listed_orders = a_admin.get("/orders?limit=100").json()
        by_sku = a_admin.get("/products", params={"sku": seeded_b.product_sku}).json()
    assert listed_products["items"], "A's own product should be listed"
    assert seeded_b.product_id not in {item["id"] for item in listed_products["items"]}
    assert seeded_b.order_id not in {item["id"] for item in listed_orders["items"]}
    assert by_sku["items"] == []


WRITES_ON_B = [
    ("PATCH", "/products/{product}", {"title": "stolen"}),
    ("PATCH", "/products/{product}", {"stock": 0, "expected_version": 1}),
    ("POST", "/products/{product}/archive", None),
    ("POST", "/products/{product}/publish", None),
    ("POST", "/orders/{order}/submit", None),
    ("POST", "/orders/{order}/cancel", {"reason": "not yours"}),
    ("POST", "/orders/{order}/pay", None),
]


@pytest.mark.parametrize(("method", "template", "body"), WRITES_ON_B)
def test_a_cannot_change_b_and_nothing_changes(
    method: str,
    template: str,
    body: dict[str, object] | None,
    server: ApiServer,
    tenant_a: TenantKeys,
    tenant_b: TenantKeys,
    seeded_b: Seeded,
) -> None:
    path = template.format(product=seeded_b.product_id, order=seeded_b.order_id)
    with server.client(tenant_a.slug, tenant_a.admin) as a_admin:
        expect_problem(a_admin.request(method, path, json=body), 404)
    unchanged_in_b(server, tenant_b, seeded_b)


def test_a_cannot_order_b_products(
    server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys, seeded_b: Seeded
) -> None:
    lines = [{"product_id": seeded_b.product_id, "quantity": 1}]
    with server.client(tenant_a.slug, tenant_a.customer) as a_customer:
        before = a_customer.get("/orders?limit=100").json()["items"]
        expect_problem(a_customer.post("/orders", json={"lines": lines}), 404)
        assert a_customer.get("/orders?limit=100").json()["items"] == before
    unchanged_in_b(server, tenant_b, seeded_b)


def test_a_key_under_b_tenant_header_is_403(
    server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys, seeded_b: Seeded
) -> None:
    with server.client(tenant_b.slug, tenant_a.admin) as crossed:
        expect_problem(crossed.get("/tenant"), 403)
        expect_problem(crossed.get(f"/products/{seeded_b.product_id}"), 403)
        expect_problem(crossed.patch("/tenant", json={"name": "taken over"}), 403)
    unchanged_in_b(server, tenant_b, seeded_b)


def test_the_tenant_resource_is_the_caller_own(
    server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys
) -> None:
    with server.client(tenant_a.slug, tenant_a.customer) as a_customer:
        assert a_customer.get("/tenant").json()["id"] == str(tenant_a.id)
    with server.client(str(tenant_b.id), tenant_a.admin) as by_uuid:
        expect_problem(by_uuid.get("/tenant"), 403)


def outbox_total(client: httpx.Client) -> int:
    counts = client.get("/admin/events/outbox").json()
    return int(counts["pending"] + counts["dead"] + counts["published"])


def test_a_counts_only_its_own_events(
    server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys, seeded_b: Seeded
) -> None:
    with (
        server.client(tenant_a.slug, tenant_a.admin) as a_admin,
        server.client(tenant_b.slug, tenant_b.admin) as b_admin,
    ):
        a_before, b_before = outbox_total(a_admin), outbox_total(b_admin)
        assert b_admin.post("/products", json=product_body()).status_code == 201
        assert (outbox_total(a_admin), outbox_total(b_admin)) == (a_before, b_before + 1)
        assert a_admin.get("/admin/events/dead-letters").json() == []


def graphql(client: httpx.Client, query: str, **variables: object) -> dict[str, Any]:
    answer = client.post("/graphql", json={"query": query, "variables": variables})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


GRAPHQL_READS = """query ($product: UUID!, $order: UUID!) {
  product(id: $product) { id }
  order(id: $order) { id }
  products(first: 100) { items { id sku } }
  orders(first: 100) { items { id } }
}"""


def test_graphql_a_never_sees_b(server: ApiServer, tenant_a: TenantKeys, seeded_b: Seeded) -> None:
    with server.client(tenant_a.slug, tenant_a.admin) as a_admin:
        body = graphql(a_admin, GRAPHQL_READS, product=seeded_b.product_id, order=seeded_b.order_id)
    data = body["data"]
    assert (data["product"], data["order"]) == (None, None), body
    assert data["products"]["items"], "A's own product should be listed"
    assert seeded_b.product_id not in {item["id"] for item in data["products"]["items"]}
    assert seeded_b.product_sku not in {item["sku"] for item in data["products"]["items"]}
    assert seeded_b.order_id not in {item["id"] for item in data["orders"]["items"]}


GRAPHQL_WRITES_ON_B = [
    "mutation ($id: UUID!) { publishProduct(id: $id) { id } }",
    "mutation ($id: UUID!) { submitOrder(id: $id) { id } }",
    'mutation ($id: UUID!) { cancelOrder(id: $id, reason: "not yours") { id } }',
    "mutation ($id: UUID!) { payOrder(id: $id) { status } }",
]


@pytest.mark.parametrize("mutation", GRAPHQL_WRITES_ON_B)
def test_graphql_a_cannot_change_b(
    mutation: str,
    server: ApiServer,
    tenant_a: TenantKeys,
    tenant_b: TenantKeys,
    seeded_b: Seeded,
) -> None:
    target = seeded_b.product_id if "Product" in mutation else seeded_b.order_id
    with server.client(tenant_a.slug, tenant_a.admin) as a_admin:
        body = graphql(a_admin, mutation, id=target)
    assert body["data"] is None, body
    assert [error["extensions"]["code"] for error in body["errors"]] == ["NOT_FOUND"]
    unchanged_in_b(server, tenant_b, seeded_b)


def test_graphql_a_cannot_order_b_skus(
    server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys, seeded_b: Seeded
) -> None:
    mutation = (
        "mutation ($sku: String!) "
        "{ createOrder(input: {lines: [{sku: $sku, quantity: 1}]}) { id } }"
    )
    with server.client(tenant_a.slug, tenant_a.customer) as a_customer:
        before = a_customer.get("/orders?limit=100").json()["items"]
        body = graphql(a_customer, mutation, sku=seeded_b.product_sku)
        assert a_customer.get("/orders?limit=100").json()["items"] == before
    assert body["data"] is None, body
    assert {error["extensions"]["code"] for error in body["errors"]} <= {
        "NOT_FOUND",
        "BAD_USER_INPUT",
    }
    unchanged_in_b(server, tenant_b, seeded_b)


def test_graphql_a_key_under_b_tenant_header_is_403(
    server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys
) -> None:
    with server.client(tenant_b.slug, tenant_a.admin) as crossed:
        answer = crossed.post("/graphql", json={"query": "{ tenant { id } }"})
    assert expect_problem(answer, 403)["code"] == "FORBIDDEN"


# Authentication and roles: one server is enough (no data path differs).


@pytest.fixture(scope="module")
def tenant_c(app_settings: Settings) -> TenantKeys:
    return make_tenant(app_settings, "Tenant C")


def forged_keys(real: str) -> dict[str, str]:
    key_id = real.split("_")[1]
    return {
        "malformed": "not-a-key",
        "prefix only": "rk_",
        "unknown key id": f"rk_{uuid.uuid4().hex[:12]}_{real.split('_', 2)[2]}",
        "right id, wrong secret": f"rk_{key_id}_{'A' * 43}",
        "right id, empty secret": f"rk_{key_id}_",
    }


def test_every_bad_key_is_401_with_one_message(api_server: ApiServer, tenant_c: TenantKeys) -> None:
    with api_server.client(tenant_c.slug) as anonymous:
        missing = expect_problem(anonymous.get("/tenant"), 401)
        details = {
            name: expect_problem(anonymous.get("/tenant", headers={"X-API-Key": key}), 401)[
                "detail"
            ]
            for name, key in forged_keys(tenant_c.admin).items()
        }
    assert missing["code"] == "UNAUTHENTICATED"
    assert len(set(details.values())) == 1, details


ROLE_REFUSALS = [
    ("customer", "POST", "/products", product_body()),
    ("customer", "PATCH", "/tenant", {"name": "mine now"}),
    ("customer", "GET", "/admin/flags", None),
    ("customer", "POST", "/admin/caches/flush", None),
    ("staff", "GET", "/admin/flags", None),
    ("staff", "PUT", "/admin/flags/commerce", {"enabled": False}),
    ("staff", "PUT", "/admin/providers/payment", {"failure_rate": 1.0, "latency_ms": 0}),
    ("staff", "PATCH", "/tenant", {"name": "mine now"}),
]


@pytest.mark.parametrize(("role", "method", "path", "body"), ROLE_REFUSALS)
def test_roles_without_the_permission_are_403(
    role: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
    api_server: ApiServer,
    tenant_c: TenantKeys,
) -> None:
    key = {"customer": tenant_c.customer, "staff": tenant_c.staff}[role]
    with api_server.client(tenant_c.slug, key) as client:
        assert expect_problem(client.request(method, path, json=body), 403)["code"] == "FORBIDDEN"
    with api_server.client(tenant_c.slug, tenant_c.admin) as admin:
        assert admin.get("/tenant").json()["name"] == "Tenant C"
        assert admin.get("/products?limit=100").json()["items"] == []


@pytest.mark.parametrize(
    ("tenant", "status"),
    [
        ("no-such-tenant-here", 404),
        (str(uuid.uuid4()), 404),
        ("Bad Tenant!", 400),
        ("../../etc/passwd", 400),
        ("-leading-hyphen", 400),
        ("x" * 300, 400),
    ],
)
def test_unknown_and_malformed_tenants(
    tenant: str, status: int, api_server: ApiServer, tenant_c: TenantKeys
) -> None:
    with api_server.client(tenant, tenant_c.admin) as client:
        expect_problem(client.get("/tenant"), status)
