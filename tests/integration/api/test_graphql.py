"""GraphQL over a real server: queries read the index, mutations go through the domain, the
same tenant, key and role checks as REST, the feature flag, the errors' codes and the limits.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import ApiServer, TenantKeys, eventually, make_tenant, run_server
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rustok_ref.api.app import create_app
from rustok_ref.api.graphql.limits import MAX_ALIASES
from rustok_ref.bootstrap import services, wire
from rustok_ref.config import Settings
from rustok_ref.features.model import Feature

PRODUCT_FIELDS = "id sku title price { amount currency } stock status version"
CREATE_PRODUCT = f"""
mutation ($input: ProductCreateInput!) {{ createProduct(input: $input) {{ {PRODUCT_FIELDS} }} }}
"""
PUBLISH = f"mutation ($id: UUID!) {{ publishProduct(id: $id) {{ {PRODUCT_FIELDS} }} }}"
ORDER_FIELDS = (
    "id status total { amount currency } lines { sku quantity unitPrice { amount } } version"
)
CREATE_ORDER = f"""
mutation ($input: OrderCreateInput!) {{ createOrder(input: $input) {{ {ORDER_FIELDS} }} }}
"""


def gql(client: httpx.Client, query: str, **variables: Any) -> dict[str, Any]:
    """The GraphQL response body of one operation (HTTP 200: errors are in the body)."""
    answer = client.post("/graphql", json={"query": query, "variables": variables})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def data(client: httpx.Client, query: str, **variables: Any) -> dict[str, Any]:
    """The data of an operation that must succeed."""
    body = gql(client, query, **variables)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


def error(client: httpx.Client, query: str, **variables: Any) -> dict[str, Any]:
    """The one error of an operation that must fail."""
    body = gql(client, query, **variables)
    assert len(body.get("errors", ())) == 1, body
    failure: dict[str, Any] = body["errors"][0]
    return failure


def new_product(staff: httpx.Client, *, publish: bool = True, amount: int = 1250) -> dict[str, Any]:
    """A new product of the staff's tenant, published unless asked otherwise."""
    product_input = {
        "sku": f"g-{uuid.uuid4().hex[:10]}",
        "title": "Teapot",
        "price": {"amount": amount, "currency": "EUR"},
        "stock": 50,
    }
    product: dict[str, Any] = data(staff, CREATE_PRODUCT, input=product_input)["createProduct"]
    if publish:
        product = data(staff, PUBLISH, id=product["id"])["publishProduct"]
    return product


def indexed_product(client: httpx.Client, product_id: str) -> dict[str, Any] | None:
    query = f"query ($id: UUID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"
    found: dict[str, Any] | None = data(client, query, id=product_id)["product"]
    return found


@pytest.fixture
def staff(api_server: ApiServer, tenant_a: TenantKeys) -> Iterator[httpx.Client]:
    with api_server.client(tenant_a.slug, tenant_a.staff) as client:
        yield client


@pytest.fixture
def customer(api_server: ApiServer, tenant_a: TenantKeys) -> Iterator[httpx.Client]:
    with api_server.client(tenant_a.slug, tenant_a.customer) as client:
        yield client


def test_a_created_product_is_written_then_read_from_the_index(staff: httpx.Client) -> None:
    created = new_product(staff, publish=False, amount=3_000_000_000)  # beyond GraphQL's Int
    assert created["status"] == "DRAFT"
    assert created["price"] == {"amount": 3_000_000_000, "currency": "EUR"}
    published = data(staff, PUBLISH, id=created["id"])["publishProduct"]
    assert (published["status"], published["version"]) == ("PUBLISHED", created["version"] + 1)

    indexed = eventually(
        lambda: (
            (found := indexed_product(staff, created["id"])) and found["version"] == 2 and found
        ),
        "the published product in the index",
    )
    assert indexed == published
    listed = data(
        staff, "{ products(status: PUBLISHED, first: 100) { items { id sku } nextCursor } }"
    )["products"]
    assert {"id": created["id"], "sku": created["sku"]} in listed["items"]


def test_product_pages_follow_the_cursor(staff: httpx.Client) -> None:
    for _ in range(3):
        new_product(staff, publish=False)
    query = (
        "query ($after: String) { products(first: 2, after: $after) { items { id } nextCursor } }"
    )
    eventually(
        lambda: (
            len(data(staff, "{ products(first: 3) { items { id } } }")["products"]["items"]) == 3
        ),
        "three products in the index",
    )
    seen: list[str] = []
    after = None
    while True:
        page = data(staff, query, after=after)["products"]
        seen += [item["id"] for item in page["items"]]
        if (after := page["nextCursor"]) is None:
            break
    assert len(seen) == len(set(seen)) >= 3
    bad_cursor = error(staff, query, after="not-a-cursor")
    assert bad_cursor["extensions"]["code"] == "BAD_USER_INPUT"


def test_an_order_is_placed_submitted_and_paid_through_mutations(
    staff: httpx.Client, customer: httpx.Client
) -> None:
    product = new_product(staff, amount=1250)
    order = data(customer, CREATE_ORDER, input={"lines": [{"sku": product["sku"], "quantity": 2}]})[
        "createOrder"
    ]
    assert order["status"] == "DRAFT"
    assert order["total"] == {"amount": 2500, "currency": "EUR"}
    assert order["lines"] == [{"sku": product["sku"], "quantity": 2, "unitPrice": {"amount": 1250}}]

    submit = "mutation ($id: UUID!) { submitOrder(id: $id) { status version } }"
    submitted = data(customer, submit, id=order["id"])["submitOrder"]
    assert submitted["status"] == "PENDING_PAYMENT"
    pay = "mutation ($id: UUID!) { payOrder(id: $id) { status orderId sagaId reason } }"
    checkout = data(customer, pay, id=order["id"])["payOrder"]
    assert checkout["orderId"] == order["id"]
    assert checkout["status"] in ("PAID", "IN_PROGRESS")

    read = "query ($id: UUID!) { order(id: $id) { status lineCount total { amount } paymentId } }"
    paid = eventually(
        lambda: (
            (found := data(customer, read, id=order["id"])["order"])
            and found["status"] == "PAID"
            and found
        ),
        "the paid order in the index",
    )
    assert (paid["lineCount"], paid["total"]["amount"]) == (1, 2500)
    assert paid["paymentId"] is not None
    listed = data(customer, "{ orders(status: PAID, first: 100) { items { id } } }")["orders"]
    assert {"id": order["id"]} in listed["items"]


def test_cancelling_keeps_the_reason_and_a_cancelled_order_cannot_be_submitted(
    staff: httpx.Client, customer: httpx.Client
) -> None:
    product = new_product(staff)
    order = data(customer, CREATE_ORDER, input={"lines": [{"sku": product["sku"], "quantity": 1}]})[
        "createOrder"
    ]
    cancel = "mutation ($id: UUID!) { cancelOrder(id: $id, reason: $why) { status cancelReason } }"
    cancel = cancel.replace("($id: UUID!)", "($id: UUID!, $why: String)")
    cancelled = data(customer, cancel, id=order["id"], why="changed my mind")["cancelOrder"]
    assert cancelled == {"status": "CANCELLED", "cancelReason": "changed my mind"}

    refused = error(
        customer, "mutation ($id: UUID!) { submitOrder(id: $id) { id } }", id=order["id"]
    )
    assert refused["extensions"]["code"] == "CONFLICT"
    assert refused["extensions"]["kind"] == "invalid_transition"
    assert refused["path"] == ["submitOrder"]


def test_domain_errors_carry_their_code_kind_and_members(
    staff: httpx.Client, customer: httpx.Client
) -> None:
    product = new_product(staff, publish=False)
    duplicate = {
        "sku": product["sku"],
        "title": "Again",
        "price": {"amount": 1, "currency": "EUR"},
        "stock": 1,
    }
    conflict = error(staff, CREATE_PRODUCT, input=duplicate)
    assert conflict["extensions"] == {"code": "CONFLICT", "kind": "conflict", "sku": product["sku"]}

    bad_currency = {
        **duplicate,
        "sku": f"g-{uuid.uuid4().hex[:10]}",
        "price": {"amount": 1, "currency": "eur"},
    }
    invalid = error(staff, CREATE_PRODUCT, input=bad_currency)
    assert invalid["extensions"]["code"] == "BAD_USER_INPUT"
    assert invalid["extensions"]["fields"] == {
        "currency": ["must be 3 uppercase letters (ISO 4217)"]
    }

    not_published = error(
        customer, CREATE_ORDER, input={"lines": [{"sku": product["sku"], "quantity": 1}]}
    )
    assert not_published["extensions"]["kind"] == "validation"

    unknown = error(
        staff, "mutation ($id: UUID!) { publishProduct(id: $id) { id } }", id=str(uuid.uuid4())
    )
    assert unknown["extensions"] == {"code": "NOT_FOUND", "kind": "not_found"}

    denied = error(customer, CREATE_PRODUCT, input={**duplicate, "sku": "never"})
    assert denied["extensions"] == {"code": "FORBIDDEN", "kind": "permission_denied"}


def test_request_errors_are_bad_user_input_and_run_nothing(customer: httpx.Client) -> None:
    unknown_field = gql(customer, "{ tenant { id doesNotExist } }")
    assert unknown_field["data"] is None
    assert [e["extensions"]["code"] for e in unknown_field["errors"]] == ["BAD_USER_INPUT"]

    not_a_long = error(
        customer,
        CREATE_PRODUCT,
        input={"sku": "x", "title": "x", "price": {"amount": 1.5, "currency": "EUR"}, "stock": 1},
    )
    assert not_a_long["extensions"]["code"] == "BAD_USER_INPUT"

    syntax = gql(customer, "{ tenant { id }")
    assert syntax["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    too_many_tokens = "{ tenant { " + "id " * 2_000 + "} }"
    assert error(customer, too_many_tokens)["extensions"]["code"] == "BAD_USER_INPUT"

    aliases = " ".join(f"a{n}: tenant {{ id }}" for n in range(MAX_ALIASES + 1))
    assert error(customer, "{ " + aliases + " }")["extensions"]["code"] == "BAD_USER_INPUT"


def test_the_tenant_is_the_keys(customer: httpx.Client, tenant_a: TenantKeys) -> None:
    tenant = data(customer, "{ tenant { id slug isActive } }")["tenant"]
    assert tenant == {"id": str(tenant_a.id), "slug": tenant_a.slug, "isActive": True}


def test_another_tenants_product_is_invisible_and_untouchable(
    api_server: ApiServer, staff: httpx.Client, tenant_b: TenantKeys
) -> None:
    mine = new_product(staff)
    eventually(lambda: indexed_product(staff, mine["id"]), "the product in the index")
    with api_server.client(tenant_b.slug, tenant_b.staff) as other:
        assert indexed_product(other, mine["id"]) is None
        refused = error(other, PUBLISH, id=mine["id"])
        assert refused["extensions"]["code"] == "NOT_FOUND"
        listed = data(other, "{ products(first: 100) { items { id } } }")["products"]["items"]
        assert {"id": mine["id"]} not in listed


def test_the_caller_is_checked_as_for_rest(
    api_server: ApiServer, tenant_a: TenantKeys, tenant_b: TenantKeys
) -> None:
    query = {"query": "{ tenant { id } }"}
    with api_server.client(tenant_a.slug) as anonymous:
        missing = anonymous.post("/graphql", json=query)
    with api_server.client(tenant_a.slug, tenant_b.admin) as foreign:
        wrong_tenant = foreign.post("/graphql", json=query)
    assert (missing.status_code, wrong_tenant.status_code) == (401, 403)
    assert missing.json()["code"] == "UNAUTHENTICATED"
    assert wrong_tenant.json()["kind"] == "permission_denied"


def test_commerce_needs_the_feature_and_works_once_it_is_enabled(
    api_server: ApiServer, app_settings: Settings
) -> None:
    shop = make_tenant(app_settings, "No commerce", features=())
    with api_server.client(shop.slug, shop.admin) as admin:
        assert data(admin, "{ tenant { slug } }")["tenant"]["slug"] == shop.slug
        refused = error(admin, "{ products { items { id } } }")
        assert refused["extensions"] == {
            "code": "FORBIDDEN",
            "kind": "feature_not_enabled",
            "feature": "commerce",
        }
        refused_write = error(
            admin,
            CREATE_PRODUCT,
            input={"sku": "x", "title": "x", "price": {"amount": 1, "currency": "EUR"}, "stock": 1},
        )
        assert refused_write["extensions"]["kind"] == "feature_not_enabled"

        async def enable() -> None:
            async with wire(app_settings) as container, services(container) as built:
                await built.flag_store.set(shop.id, Feature.COMMERCE, enabled=True)

        asyncio.run(enable())
        eventually(
            lambda: "errors" not in gql(admin, "{ products { items { id } } }"),
            "commerce enabled for the tenant",
        )
        new_product(admin, publish=False)


@pytest.fixture(scope="module")
def shallow_server(
    app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """A server that allows a depth of 1 (a field and its scalars), running no workers."""
    env = {"RUSTOK_GRAPHQL_MAX_DEPTH": "1", "RUSTOK_API_RUN_WORKERS": "false"}
    log_dir: Path = tmp_path_factory.mktemp("graphql-shallow")
    with run_server(app_settings, log_dir, env=env) as server:
        yield server


def test_a_too_deep_operation_is_refused_before_anything_runs(
    shallow_server: ApiServer, tenant_a: TenantKeys
) -> None:
    sku = f"g-{uuid.uuid4().hex[:10]}"
    product_input = {
        "sku": sku,
        "title": "Deep",
        "price": {"amount": 5, "currency": "EUR"},
        "stock": 1,
    }
    with shallow_server.client(tenant_a.slug, tenant_a.staff) as staff:
        deep = CREATE_PRODUCT.replace(PRODUCT_FIELDS, "price { amount }")
        refused = gql(staff, deep, input=product_input)
        assert refused["data"] is None
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["BAD_USER_INPUT"]
        shallow = CREATE_PRODUCT.replace(PRODUCT_FIELDS, "sku")
        assert data(staff, shallow, input=product_input)["createProduct"] == {"sku": sku}


async def test_resolvers_name_the_tenant_order_and_sku_on_the_request_span(
    app_settings: Settings, tenant_a: TenantKeys
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    quiet = app_settings.model_copy(update={"api_run_workers": False, "api_recover_sagas": False})
    app = create_app(quiet, tracer_provider=provider)
    sku = f"g-{uuid.uuid4().hex[:10]}"
    product_input = {
        "sku": sku,
        "title": "Traced",
        "price": {"amount": 5, "currency": "EUR"},
        "stock": 3,
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            client.headers.update({"X-Tenant-ID": tenant_a.slug, "X-API-Key": tenant_a.staff})

            async def run(query: str, **variables: Any) -> dict[str, Any]:
                answer = await client.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                assert "errors" not in answer.json(), answer.text
                result: dict[str, Any] = next(iter(answer.json()["data"].values()))
                return result

            product = await run(CREATE_PRODUCT, input=product_input)
            await run(PUBLISH, id=product["id"])
            lines = [{"sku": sku, "quantity": 1}]
            order = await run(CREATE_ORDER, input={"lines": lines})
    spans = [dict(span.attributes or {}) for span in exporter.get_finished_spans()]
    graphql_spans = [span for span in spans if span.get("http.route") == "/graphql"]
    assert len(graphql_spans) == 3
    assert all(span["tenant_id"] == str(tenant_a.id) for span in graphql_spans)
    assert graphql_spans[0]["sku"] == graphql_spans[1]["sku"] == graphql_spans[2]["sku"] == sku
    assert graphql_spans[1]["product_id"] == product["id"]
    assert graphql_spans[2]["order_id"] == order["id"]
