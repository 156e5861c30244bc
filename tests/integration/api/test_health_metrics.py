"""/readyz and the state gauges on /metrics, against real servers (one over the session's
Redis, one whose Redis goes through a fault proxy the test takes down), and the gauges in
prometheus-client's multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from api_support import (
    ApiServer,
    Samples,
    TenantKeys,
    metric_samples,
    run_server,
    sample_value,
)
from support import redis_proxy_for

from rustok_ref.config import Settings
from rustok_ref.lab.faults import FaultProxy

READY_CHECKS = {"database", "redis", "relay_lag", "dead_letters", "breakers"}
STATE_METRICS = {
    "rustok_tenant_cache_requests_total",
    "rustok_tenant_cache_hits_total",
    "rustok_tenant_cache_misses_total",
    "rustok_tenant_cache_size",
    "rustok_breaker_state",
    "rustok_dispatcher_depth",
    "rustok_outbox_pending",
    "rustok_outbox_lag_seconds",
    "rustok_saga_outcomes_total",
    "rustok_ratelimit_failed_open_total",
}
# liveness bounds, >= 10x what they wait for (the 1 s refresher, the 1 s check timeout)
REFRESH_BOUND_S = 15.0
READY_BOUND_S = 30.0


def _eventually(client: httpx.Client, until: Callable[[Samples], bool]) -> Samples:
    """/metrics, read again until `until` holds (the gauges refresh every second)."""
    deadline = time.monotonic() + REFRESH_BOUND_S
    while True:
        samples = metric_samples(client.get("/metrics").text)
        if until(samples):
            return samples
        assert time.monotonic() < deadline, "the metrics never showed the expected values"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def redis_proxy(app_settings: Settings) -> Iterator[FaultProxy]:
    assert app_settings.redis_url is not None
    with redis_proxy_for(app_settings.redis_url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def proxied_server(
    app_settings: Settings, redis_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    assert app_settings.redis_url is not None
    parts = urlsplit(app_settings.redis_url)
    url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{redis_proxy.port}"))
    settings = app_settings.model_copy(update={"redis_url": url})
    with run_server(settings, tmp_path_factory.mktemp("api-proxied")) as server:
        yield server


def test_ready_when_every_dependency_answers(api_server: ApiServer) -> None:
    with api_server.client() as client:
        answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == READY_CHECKS
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["breakers"] == {"ok": True, "redis": "closed"}


def test_metrics_list_every_state_metric(api_server: ApiServer, tenant_a: TenantKeys) -> None:
    with api_server.client(tenant_a.slug, tenant_a.admin) as client:
        assert client.get("/admin/flags").status_code == 200  # resolves the tenant
        samples = _eventually(
            client, lambda s: (sample_value(s, "rustok_tenant_cache_requests_total") or 0) >= 1
        )
    names = {name for name, _ in samples}
    assert names >= STATE_METRICS
    assert sample_value(samples, "rustok_breaker_state", breaker="redis") == 0  # closed
    for state in ("completed", "compensated", "failed"):
        assert sample_value(samples, "rustok_saga_outcomes_total", state=state) is not None
    hits = sample_value(samples, "rustok_tenant_cache_hits_total") or 0
    misses = sample_value(samples, "rustok_tenant_cache_misses_total") or 0
    assert hits + misses == sample_value(samples, "rustok_tenant_cache_requests_total")
    assert (sample_value(samples, "rustok_tenant_cache_size") or 0) >= 1


def test_not_ready_while_redis_is_unreachable_and_ready_again_after(
    proxied_server: ApiServer, redis_proxy: FaultProxy, tenant_a: TenantKeys
) -> None:
    with proxied_server.client() as client:
        assert client.get("/readyz").status_code == 200
        redis_proxy.disable()
        try:
            down = client.get("/readyz")
            with proxied_server.client(tenant_a.slug, tenant_a.admin) as admin:
                served = admin.get("/admin/flags")  # the rate limiter fails open
                samples = _eventually(
                    admin,
                    lambda s: (sample_value(s, "rustok_ratelimit_failed_open_total") or 0) >= 1,
                )
        finally:
            redis_proxy.enable()
        deadline = time.monotonic() + READY_BOUND_S
        while (up := client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, f"never ready again: {up.text}"
            time.sleep(0.2)
    assert down.status_code == 503
    assert down.headers["Retry-After"].isdigit()
    body = down.json()
    assert body["status"] == "not_ready"
    assert "redis" in body["failing"]
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert served.status_code == 200
    assert (sample_value(samples, "rustok_ratelimit_failed_open_total") or 0) >= 1


_MULTIPROCESS_SCRIPT = """
from rustok_ref.api.metrics import ApiMetrics
from rustok_ref.api.ratelimit import RateLimitStats
from rustok_ref.events.relay import Backlog
from rustok_ref.resilience.breaker import CircuitState
from rustok_ref.saga.log import SagaState
from rustok_ref.tenancy.cache_api import CacheStats

metrics = ApiMetrics()
metrics.record_tenant_cache(CacheStats(request_count=3, hit_count=2, miss_count=1), 1)
metrics.record_breaker("redis", CircuitState.OPEN)
metrics.record_dispatcher_depth(7)
metrics.record_rate_limit(RateLimitStats(failed_open=2))
metrics.record_outbox(Backlog(pending=4, dead=0, oldest_pending_s=1.5))
metrics.count_saga_outcome(SagaState.COMPENSATED)
print(metrics.render().decode())
"""


def test_gauges_render_in_multiprocess_mode(tmp_path: Path) -> None:
    """What `serve --workers N` does: every value goes through the shared directory."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _MULTIPROCESS_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    samples = metric_samples(done.stdout)
    assert {name for name, _ in samples} >= STATE_METRICS
    assert sample_value(samples, "rustok_breaker_state", breaker="redis") == 2  # open
    assert sample_value(samples, "rustok_tenant_cache_requests_total") == 3
    assert sample_value(samples, "rustok_dispatcher_depth") == 7
    assert sample_value(samples, "rustok_outbox_lag_seconds") == 1.5
    assert sample_value(samples, "rustok_saga_outcomes_total", state="compensated") == 1
    assert sample_value(samples, "rustok_ratelimit_failed_open_total") == 2
    assert any(tmp_path.iterdir())  # the values went through the shared files
