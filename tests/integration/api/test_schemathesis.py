"""Schemathesis against the running server's own OpenAPI document.

Every operation gets generated requests twice: as a seeded tenant's admin (ids, in paths
and bodies, mostly drawn from real products, orders and checkouts, and amounts mostly ones
the domain accepts, so the cases reach the domain and not only the validators), and with
no key. The checks: no 5xx; statuses, content types and bodies as documented; every 4xx
and 5xx an `application/problem+json` body. The admin run must also see a 2xx on every
operation, or the document describes calls that cannot succeed; the keyless run must see
none outside the public probes. Shrinking is off: a failure is reported as found, which
keeps a failing run as short as a passing one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
import schemathesis
from api_support import ApiServer, TenantKeys, make_tenant, product_body
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rustok_ref.config import Settings

PROBLEM = "application/problem+json"
EXAMPLES = 25
FULL_EXAMPLES = 200
SAGA_WAIT_S = 60.0  # liveness bound for a checkout saga that is still in progress

NEVER_2XX = {
    "POST /admin/events/dead-letters/{event_id}/replay": "no dead letter exists to replay",
}
"""Operations a seeded tenant cannot make succeed, with the reason."""

PUBLIC = frozenset({"GET /healthz", "GET /readyz", "GET /metrics"})
"""The operations that answer without a key."""


def problem_json_on_errors(ctx: Any, response: schemathesis.Response, case: Any) -> bool | None:
    """Every 4xx and 5xx is an RFC 9457 problem."""
    if response.status_code >= 400:
        media = response.headers.get("content-type", [""])[0].split(";")[0]
        assert media == PROBLEM, f"{case.operation.label}: {response.status_code} as {media!r}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    problem_json_on_errors,
]


def settled_checkout(client: httpx.Client, order_id: str) -> dict[str, Any]:
    """Pay the order and wait (polling its Location) until the saga has ended."""
    answer = client.post(f"/orders/{order_id}/pay")
    deadline = time.monotonic() + SAGA_WAIT_S
    while answer.status_code == 202:
        assert time.monotonic() < deadline, "the checkout saga never ended"
        time.sleep(0.2)
        answer = client.get(answer.headers["Location"])
    assert answer.status_code == 200 and answer.json()["status"] == "paid", answer.text
    checkout: dict[str, Any] = answer.json()
    return checkout


def seed(client: httpx.Client) -> dict[str, list[Any]]:
    """Real values by path parameter (`<operation>:<name>` for one operation's own), and by
    body field (`body.<name>`): products and orders
    in every status an operation moves from (orders several times over, since the fuzzed
    transitions use them up), checkouts as (order, saga) pairs, a product orders can buy,
    and amounts the domain and the stock accept."""

    def product(*steps: str) -> str:
        product_id: str = client.post("/products", json=product_body(stock=1000)).json()["id"]
        for step in steps:
            assert client.post(f"/products/{product_id}/{step}").status_code == 200, step
        return product_id

    moved = [product(), product("publish"), product("publish", "archive")]
    orderable = product("publish")  # kept out of the path ids, so it stays published

    def order(*steps: str) -> str:
        lines = [{"product_id": orderable, "quantity": 1}]
        order_id: str = client.post("/orders", json={"lines": lines}).json()["id"]
        for step in steps:
            assert client.post(f"/orders/{order_id}/{step}").status_code == 200, step
        return order_id

    checkouts = [(paid, settled_checkout(client, paid)["saga_id"]) for paid in (order("submit"),)]
    shipped = order("submit")
    settled_checkout(client, shipped)
    assert client.post(f"/orders/{shipped}/ship").status_code == 200
    orders = [order(), order(), order("submit"), order("submit"), order("submit")]
    return {
        "product_id": moved,
        "order_id": [*orders, checkouts[0][0], shipped],
        # cancelling runs last, once submit and pay used the others up
        "POST /orders/{order_id}/cancel:order_id": [order(), order("submit")],
        "checkout": checkouts,
        "body.product_id": [orderable],
        "body.currency": ["EUR"],
        "body.title": ["Renamed kettle"],
        "body.expected_version": [None],
        "body.amount": [2599],
        "body.stock": [1000],
        "body.quantity": [1],
    }


@pytest.fixture(scope="module")
def seeded_tenant(app_settings: Settings) -> TenantKeys:
    return make_tenant(app_settings, "Fuzzed")


@pytest.fixture
def seeds(api_server: ApiServer, seeded_tenant: TenantKeys) -> Iterator[dict[str, list[Any]]]:
    """Fresh seeded ids for each test (a run uses its orders up); afterwards the providers'
    faults are cleared, since the fuzzed admin calls may have set any."""
    with api_server.client(seeded_tenant.slug, seeded_tenant.admin) as client:
        yield seed(client)
        for provider in ("payment", "shipping"):
            reset = client.put(
                f"/admin/providers/{provider}", json={"failure_rate": 0.0, "latency_ms": 0}
            )
            assert reset.status_code == 200, reset.text


@pytest.fixture(scope="module")
def schema(api_server: ApiServer) -> Any:
    """The REST operations of the served document. `/graphql` is left out: its contract is
    the GraphQL schema (its errors are GraphQL errors, not problems), which the isolation
    and bad-input tests exercise."""
    served = schemathesis.openapi.from_url(f"{api_server.base_url}/openapi.json")
    return served.exclude(path="/graphql")


def operations(schema: Any) -> list[Any]:
    """Every operation; cancelling, then the admin ones, last (a cancelled order, fuzzed
    flag or provider fault must not starve the others of their 2xx)."""
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(
        found,
        key=lambda operation: (operation.path.startswith("/admin"), "cancel" in operation.path),
    )


def real(name: str, generated: Any, refs: Mapping[str, Sequence[Any]], data: Any) -> Any:
    """Mostly a real value for a field named like a seeded one, else what was generated."""
    if name not in refs:
        return generated
    return data.draw(st.sampled_from([*refs[name], generated]), label=name)


def with_real_refs(body: Any, refs: Mapping[str, Sequence[Any]], data: Any) -> Any:
    """`body` with its fields seeded as `body.<name>` (at any depth) drawn by `real`."""
    if isinstance(body, list):
        return [with_real_refs(item, refs, data) for item in body]
    if isinstance(body, dict):
        return {
            key: real(f"body.{key}", value, refs, data)
            if f"body.{key}" in refs
            else with_real_refs(value, refs, data)
            for key, value in body.items()
        }
    return body


def exercise(
    operation: Any,
    base_url: str,
    headers: Mapping[str, str],
    refs: Mapping[str, Sequence[Any]],
    examples: int,
) -> Counter[int]:
    """Run `examples` generated cases of one operation; the statuses seen, by count."""
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        path = case.path_parameters or {}
        if {"order_id", "saga_id"} <= path.keys():  # a checkout is real only as a pair
            generated = (path["order_id"], path["saga_id"])
            path["order_id"], path["saga_id"] = real("checkout", generated, refs, data)
        else:
            for name in path:
                own = f"{case.operation.label}:{name}"  # this operation's own seeds first
                path[name] = real(own if own in refs else name, path[name], refs, data)
        if isinstance(case.body, dict | list):
            case.body = with_real_refs(case.body, refs, data)
        response = case.call(base_url=base_url, headers=dict(headers))
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()
    return statuses


def fuzz_all(
    schema: Any,
    base_url: str,
    headers: Mapping[str, str],
    seeds: Mapping[str, Sequence[Any]],
    examples: int,
) -> dict[str, Counter[int]]:
    """Each operation's statuses; the failures of all operations are reported together."""
    seen: dict[str, Counter[int]] = {}
    failures: list[str] = []
    for operation in operations(schema):
        try:
            seen[operation.label] = exercise(operation, base_url, headers, seeds, examples)
        except (Exception, FailureGroup) as exc:  # collected, then reported as one failure
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    return seen


def assert_every_operation_succeeded_once(seen: Mapping[str, Counter[int]]) -> None:
    never = {
        label: dict(statuses)
        for label, statuses in seen.items()
        if label not in NEVER_2XX and not any(200 <= status < 300 for status in statuses)
    }
    assert not never, f"operations with no 2xx: {never}"


def admin_headers(tenant: TenantKeys) -> dict[str, str]:
    return {"X-Tenant-ID": tenant.slug, "X-API-Key": tenant.admin}


def test_every_operation_as_admin(
    schema: Any, api_server: ApiServer, seeded_tenant: TenantKeys, seeds: dict[str, list[Any]]
) -> None:
    seen = fuzz_all(schema, api_server.base_url, admin_headers(seeded_tenant), seeds, EXAMPLES)
    assert set(NEVER_2XX) <= set(seen), "a NEVER_2XX entry names no operation"
    assert_every_operation_succeeded_once(seen)


def test_every_operation_without_a_key(
    schema: Any, api_server: ApiServer, seeded_tenant: TenantKeys, seeds: dict[str, list[Any]]
) -> None:
    headers = {"X-Tenant-ID": seeded_tenant.slug}
    seen = fuzz_all(schema, api_server.base_url, headers, seeds, EXAMPLES)
    served = {
        label: dict(statuses)
        for label, statuses in seen.items()
        if label not in PUBLIC and any(status < 400 for status in statuses)
    }
    assert not served, f"answered without a key: {served}"


@pytest.mark.slow
def test_every_operation_as_admin_thoroughly(
    schema: Any, api_server: ApiServer, seeded_tenant: TenantKeys, seeds: dict[str, list[Any]]
) -> None:
    headers = admin_headers(seeded_tenant)
    seen = fuzz_all(schema, api_server.base_url, headers, seeds, FULL_EXAMPLES)
    assert_every_operation_succeeded_once(seen)
