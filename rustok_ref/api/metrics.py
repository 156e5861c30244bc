"""Prometheus metrics of the API process (prometheus-client; multiprocess mode when
`PROMETHEUS_MULTIPROC_DIR` is set, which `rustok-ref serve --workers N` does).

Besides the request instruments and the saga outcomes (counted as the orchestrator ends
each saga), `record_*` take snapshots of the process's objects (the lifespan's refresher
calls them every `metrics_refresh_s`): cumulative statistics become counters advanced by
their growth since the last snapshot, current values become gauges. Every gauge names how
worker processes combine (`multiprocess_mode`): per-process values (cache size, dispatcher
depth) are summed over the live workers, the outbox's database-wide values, which every
worker reads alike, and the breaker state take the maximum.

`rustok_breaker_state` values: 0 closed, 1 half-open, 2 open, 3 forced open, 4 disabled
(admits everything, never trips); with several workers, the highest a live one reports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from rustok_ref.api.ratelimit import RateLimitStats
from rustok_ref.events.relay import Backlog
from rustok_ref.resilience.breaker import CircuitState
from rustok_ref.saga.log import SagaState
from rustok_ref.tenancy.cache_api import CacheStats

__all__ = ["BREAKER_STATE_VALUES", "CONTENT_TYPE_LATEST", "SAGA_OUTCOMES", "ApiMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

BREAKER_STATE_VALUES: Final[Mapping[CircuitState, int]] = {
    CircuitState.CLOSED: 0,
    CircuitState.HALF_OPEN: 1,
    CircuitState.OPEN: 2,
    CircuitState.FORCED_OPEN: 3,
    CircuitState.DISABLED: 4,
}
SAGA_OUTCOMES: Final = (SagaState.COMPLETED, SagaState.COMPENSATED, SagaState.FAILED)


class ApiMetrics:
    """The API's instruments, on a registry of their own (so two apps in one test process
    do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rustok_http_requests",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rustok_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._init_state_instruments()

    def _init_state_instruments(self) -> None:
        registry = self.registry
        self.tenant_cache_requests = Counter(
            "rustok_tenant_cache_requests", "Tenant cache lookups.", registry=registry
        )
        self.tenant_cache_hits = Counter(
            "rustok_tenant_cache_hits",
            "Tenant cache lookups served from memory.",
            registry=registry,
        )
        self.tenant_cache_misses = Counter(
            "rustok_tenant_cache_misses", "Tenant cache lookups that loaded.", registry=registry
        )
        self.tenant_cache_size = Gauge(
            "rustok_tenant_cache_size",
            "Entries in the tenant caches of the live workers.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.product_cache_hits = Counter(
            "rustok_product_cache_hits",
            "GET /products/{id} answered from memory.",
            registry=registry,
        )
        self.product_cache_misses = Counter(
            "rustok_product_cache_misses",
            "GET /products/{id} that read the database.",
            registry=registry,
        )
        self.product_cache_size = Gauge(
            "rustok_product_cache_size",
            "Entries in the product caches of the live workers.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.breaker_state = Gauge(
            "rustok_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open, 3 forced open, 4 disabled.",
            ["breaker"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.dispatcher_depth = Gauge(
            "rustok_dispatcher_depth",
            "Items queued in the in-process dispatchers of the live workers.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "rustok_outbox_pending",
            "Outbox rows waiting for the relay (every tenant).",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.outbox_dead = Gauge(
            "rustok_outbox_dead",
            "Dead outbox rows, each blocking its aggregate (every tenant).",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.outbox_lag = Gauge(
            "rustok_outbox_lag_seconds",
            "Age of the oldest pending outbox row (0 when none waits).",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.saga_outcomes = Counter(
            "rustok_saga_outcomes",
            "Sagas this process drove to an end, by final state.",
            ["state"],
            registry=registry,
        )
        self.rate_limit_failed_open = Counter(
            "rustok_ratelimit_failed_open",
            "Requests served unchecked because Redis could not count them (fail-open).",
            registry=registry,
        )
        for state in SAGA_OUTCOMES:
            self.saga_outcomes.labels(state.value)
        self._seen: dict[Counter, float] = {}

    def _advance(self, counter: Counter, total: float) -> None:
        """Advance `counter` by how much `total` grew since its last snapshot."""
        grown = total - self._seen.get(counter, 0.0)
        if grown > 0:
            counter.inc(grown)
        self._seen[counter] = total

    def record_tenant_cache(self, stats: CacheStats, size: int) -> None:
        self._advance(self.tenant_cache_requests, stats.request_count)
        self._advance(self.tenant_cache_hits, stats.hit_count)
        self._advance(self.tenant_cache_misses, stats.miss_count)
        self.tenant_cache_size.set(size)

    def record_product_cache(self, *, hits: int, misses: int, size: int) -> None:
        self._advance(self.product_cache_hits, hits)
        self._advance(self.product_cache_misses, misses)
        self.product_cache_size.set(size)

    def record_breaker(self, name: str, state: CircuitState) -> None:
        self.breaker_state.labels(name).set(BREAKER_STATE_VALUES[state])

    def record_dispatcher_depth(self, depth: int) -> None:
        self.dispatcher_depth.set(depth)

    def record_rate_limit(self, stats: RateLimitStats) -> None:
        self._advance(self.rate_limit_failed_open, stats.failed_open)

    def record_outbox(self, backlog: Backlog) -> None:
        self.outbox_pending.set(backlog.pending)
        self.outbox_dead.set(backlog.dead)
        self.outbox_lag.set(backlog.oldest_pending_s or 0.0)

    def count_saga_outcome(self, state: SagaState) -> None:
        self.saga_outcomes.labels(state.value).inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The exposition text; in multiprocess mode, every live worker's samples."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
