"""The request pipeline every route shares: problems, correlation ids, keys and roles."""

from __future__ import annotations

from api_support import PROBLEM, ApiServer, TenantKeys


def test_health_and_correlation_id_round_trip(api_server: ApiServer) -> None:
    with api_server.client() as client:
        answer = client.get("/healthz", headers={"X-Correlation-ID": "abc-123"})
    assert answer.status_code == 200
    assert answer.headers["X-Correlation-ID"] == "abc-123"


def test_a_malformed_correlation_id_is_replaced(api_server: ApiServer) -> None:
    with api_server.client() as client:
        answer = client.get("/healthz", headers={"X-Correlation-ID": "bad id\twith spaces"})
    assert answer.headers["X-Correlation-ID"] not in ("", "bad id\twith spaces")


def test_unknown_route_is_a_problem(api_server: ApiServer) -> None:
    with api_server.client() as client:
        answer = client.get("/no/such/route")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["correlation_id"] == answer.headers["X-Correlation-ID"]


def test_oversized_and_non_json_bodies_are_refused_before_any_work(api_server: ApiServer) -> None:
    with api_server.client() as client:
        too_big = client.post(
            "/healthz",
            content=b"{" + b" " * (2 << 20) + b"}",
            headers={"content-type": "application/json"},
        )
        wrong_type = client.post("/healthz", content=b"x", headers={"content-type": "text/plain"})
    assert (too_big.status_code, wrong_type.status_code) == (413, 415)
    assert too_big.headers["content-type"] == wrong_type.headers["content-type"] == PROBLEM


def test_metrics_count_requests_by_route_template(api_server: ApiServer) -> None:
    with api_server.client() as client:
        client.get("/healthz")
        text = client.get("/metrics").text
    assert 'rustok_http_requests_total{method="GET",route="/healthz",status="200"}' in text


def test_tenants_are_made_with_keys_of_every_role(tenant_a: TenantKeys) -> None:
    assert {tenant_a.admin, tenant_a.staff, tenant_a.customer} == set(tenant_a.keys.values())
    assert all(key.startswith("rk_") for key in tenant_a.keys.values())
