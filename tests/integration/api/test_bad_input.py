"""Bad input never gets past the edge: each malformed request is a 4xx problem and the
tenant's products and orders are exactly what they were.

The counts are read with direct SQL as the worker role (not through the read index, which
lags), so a write that slipped through and was answered with an error would still show.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import (
    PROBLEM,
    ApiServer,
    TenantKeys,
    create_product,
    expect_problem,
    product_body,
    run_server,
    tenant_counts,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings

BODY_CAP = 4096


@pytest.fixture(scope="module")
def strict_server(
    app_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """A server with a small body cap and a GraphQL depth limit of 1 (root fields are depth 0)."""
    env = {
        "RUSTOK_API_MAX_BODY_BYTES": str(BODY_CAP),
        "RUSTOK_GRAPHQL_MAX_DEPTH": "1",
        "RUSTOK_API_RUN_WORKERS": "false",
    }
    with run_server(app_settings, tmp_path_factory.mktemp("strict"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def published_product(api_server: ApiServer, tenant_a: TenantKeys) -> str:
    """A product of tenant A customers can order (so only the bad field is wrong)."""
    with api_server.client(tenant_a.slug, tenant_a.staff) as client:
        return create_product(client, publish=True)


RAW_BODIES = {
    "malformed JSON": b'{"sku": "x", "title": ',
    "JSON array for an object": b'[{"sku": "x"}]',
    "JSON scalar for an object": b'"product"',
    "empty object": b"{}",
    "NaN for money": b'{"sku": "nan-1", "title": "t", "price": {"amount": NaN, '
    b'"currency": "EUR"}, "stock": 1}',
}


@pytest.mark.parametrize("raw", RAW_BODIES.values(), ids=RAW_BODIES.keys())
async def test_unparseable_or_misshapen_product_bodies_are_400(
    raw: bytes,
    api_server: ApiServer,
    tenant_a: TenantKeys,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await tenant_counts(sessions, tenant_a.id)
    with api_server.client(tenant_a.slug, tenant_a.staff) as client:
        answer = client.post("/products", content=raw, headers={"content-type": "application/json"})
    assert expect_problem(answer, 400)["code"] == "BAD_USER_INPUT"
    assert await tenant_counts(sessions, tenant_a.id) == before


BAD_PRODUCTS = {
    "unknown field": {"discount": 50},
    "float amount": {"price": {"amount": 25.99, "currency": "EUR"}},
    "whole float amount": {"price": {"amount": 2599.0, "currency": "EUR"}},
    "amount as string": {"price": {"amount": "2599", "currency": "EUR"}},
    "bare number price": {"price": 2599},
    "negative price": {"price": {"amount": -1, "currency": "EUR"}},
    "unknown currency": {"price": {"amount": 100, "currency": "XXX"}},
    "unknown field in price": {"price": {"amount": 100, "currency": "EUR", "tax": 1}},
    "negative stock": {"stock": -3},
    "float stock": {"stock": 1.5},
    "null title": {"title": None},
    "huge amount": {"price": {"amount": 10**30, "currency": "EUR"}},
}


@pytest.mark.parametrize("changes", BAD_PRODUCTS.values(), ids=BAD_PRODUCTS.keys())
async def test_invalid_product_fields_are_400_and_name_the_field(
    changes: dict[str, object],
    api_server: ApiServer,
    tenant_a: TenantKeys,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await tenant_counts(sessions, tenant_a.id)
    with api_server.client(tenant_a.slug, tenant_a.staff) as client:
        answer = client.post("/products", json=product_body(**changes))
    body = expect_problem(answer, 400)
    assert body["fields"], body
    assert await tenant_counts(sessions, tenant_a.id) == before


BAD_LINES = {
    "negative quantity": [{"quantity": -1}],
    "zero quantity": [{"quantity": 0}],
    "float quantity": [{"quantity": 1.5}],
    "no lines": [],
    "bad product id": [{"product_id": "not-a-uuid"}],
    "unknown field in a line": [{"unit_price": 1}],
}


@pytest.mark.parametrize("lines", BAD_LINES.values(), ids=BAD_LINES.keys())
async def test_invalid_order_lines_are_400(
    lines: list[dict[str, object]],
    api_server: ApiServer,
    tenant_a: TenantKeys,
    published_product: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await tenant_counts(sessions, tenant_a.id)
    body = {"lines": [{"product_id": published_product, "quantity": 1, **line} for line in lines]}
    with api_server.client(tenant_a.slug, tenant_a.customer) as client:
        answer = client.post("/orders", json=body)
    expect_problem(answer, 400)
    assert await tenant_counts(sessions, tenant_a.id) == before


BAD_QUERIES = {
    "limit zero": "/products?limit=0",
    "limit over the cap": "/products?limit=101",
    "limit not a number": "/products?limit=ten",
    "unknown status": "/products?status=sold",
    "forged cursor": "/products?cursor=not-a-cursor",
    "order status": "/orders?status=lost",
    "product id not a UUID": "/products/not-a-uuid",
    "order id not a UUID": "/orders/12345",
    "saga id not a UUID": f"/orders/{uuid.uuid4()}/checkout/x",
}


@pytest.mark.parametrize("path", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_bad_paths_and_query_parameters_are_400(
    path: str, api_server: ApiServer, tenant_a: TenantKeys
) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        expect_problem(client.get(path), 400)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
async def test_a_body_that_is_not_json_is_415(
    content_type: str,
    api_server: ApiServer,
    tenant_a: TenantKeys,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await tenant_counts(sessions, tenant_a.id)
    with api_server.client(tenant_a.slug, tenant_a.staff) as client:
        answer = client.post(
            "/products", content=b"sku=x&title=y", headers={"content-type": content_type}
        )
    expect_problem(answer, 415)
    assert await tenant_counts(sessions, tenant_a.id) == before


def in_chunks(raw: bytes) -> Iterator[bytes]:
    """`raw` as an iterator, which httpx sends chunked (no Content-Length to refuse early)."""
    for start in range(0, len(raw), 512):
        yield raw[start : start + 512]


@pytest.mark.parametrize("streamed", [False, True], ids=["declared length", "chunked"])
async def test_a_body_over_the_cap_is_413(
    streamed: bool,
    strict_server: ApiServer,
    tenant_a: TenantKeys,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await tenant_counts(sessions, tenant_a.id)
    raw = json.dumps(product_body(title="x" * (2 * BODY_CAP))).encode()
    content = in_chunks(raw) if streamed else raw
    with strict_server.client(tenant_a.slug, tenant_a.staff) as client:
        answer = client.post(
            "/products", content=content, headers={"content-type": "application/json"}
        )
        within = client.post("/products", json=product_body())
    assert ("content-length" in answer.request.headers) is not streamed
    expect_problem(answer, 413)
    assert within.status_code == 201, within.text
    assert await tenant_counts(sessions, tenant_a.id) == (before[0] + 1, before[1])


def graphql_errors(answer: httpx.Response) -> list[dict[str, Any]]:
    """The errors of a GraphQL answer that ran nothing (no data)."""
    body = answer.json()
    assert body.get("data") is None, body
    errors: list[dict[str, Any]] = body["errors"]
    assert errors and all("code" in error["extensions"] for error in errors), body
    return errors


ALIASED_CREATES = " ".join(
    f'p{n}: createProduct(input: {{sku: "alias-{n}", title: "t", '
    f'price: {{amount: 1, currency: "EUR"}}, stock: 1}}) {{ id }}'
    for n in range(16)
)
HUGE_DOCUMENT = " ".join("tenant { id slug name }" for _ in range(600))
GRAPHQL_ABUSE = {
    "more aliases than the limit": f"mutation {{ {ALIASED_CREATES} }}",
    "more tokens than the limit": f"{{ {HUGE_DOCUMENT} }}",
    "not GraphQL": "{ products(first: ",
    "unknown field": "{ tenant { secret } }",
    "first over the cap": "{ products(first: 100000) { items { id } } }",
}


@pytest.mark.parametrize("query", GRAPHQL_ABUSE.values(), ids=GRAPHQL_ABUSE.keys())
async def test_abusive_graphql_documents_run_nothing(
    query: str,
    api_server: ApiServer,
    tenant_a: TenantKeys,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await tenant_counts(sessions, tenant_a.id)
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        errors = graphql_errors(client.post("/graphql", json={"query": query}))
    assert {error["extensions"]["code"] for error in errors} == {"BAD_USER_INPUT"}
    assert await tenant_counts(sessions, tenant_a.id) == before


async def test_a_graphql_document_deeper_than_the_limit_runs_nothing(
    strict_server: ApiServer, tenant_a: TenantKeys, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The schema has no cycles, so depth shows on a server whose limit is below the
    deepest plain query (introspection fields are not counted by strawberry's limiter)."""
    before = await tenant_counts(sessions, tenant_a.id)
    deep = {
        "query": 'mutation { createProduct(input: {sku: "deep", title: "t", price: '
        '{amount: 1, currency: "EUR"}, stock: 1}) { price { amount } } }'
    }
    shallow = {"query": "{ tenant { id } }"}
    with strict_server.client(tenant_a.slug, tenant_a.admin) as client:
        errors = graphql_errors(client.post("/graphql", json=deep))
        assert client.post("/graphql", json=shallow).json()["data"]["tenant"]["id"] == str(
            tenant_a.id
        )
    assert {error["extensions"]["code"] for error in errors} == {"BAD_USER_INPUT"}
    assert await tenant_counts(sessions, tenant_a.id) == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"", "application/json"), (b"[1, 2]", "application/json"), (b"query=1", "text/plain")],
    ids=["empty body", "array body", "text body"],
)
def test_a_graphql_request_that_is_not_a_json_object_is_a_4xx_problem(
    content: bytes, content_type: str, api_server: ApiServer, tenant_a: TenantKeys
) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        answer = client.post("/graphql", content=content, headers={"content-type": content_type})
    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"] == PROBLEM, (answer.status_code, answer.text)
