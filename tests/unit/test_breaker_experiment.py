"""The breaker experiment: the sketch's defect patterns on fake clocks (pure), and the outage
run through the fault proxy in front of the real Redis (integration)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from rustok_ref.lab import infra
from rustok_ref.lab.experiments import breaker
from rustok_ref.lab.faults import FaultProxy
from rustok_ref.resilience import CircuitState


def test_spread_failures_trip_the_sketch_only() -> None:
    made = breaker.breakers(success_threshold=1)
    assert breaker.trips_on_spread_failures(*made["recommended"]) == 0
    assert breaker.trips_on_spread_failures(*made["sketch"]) >= 1


def test_the_sketch_closes_on_one_success_after_a_healthy_history() -> None:
    made = breaker.breakers(success_threshold=3)
    assert breaker.successes_to_close(*made["recommended"]) == 3
    assert breaker.successes_to_close(*made["sketch"]) == 1


async def test_the_sketch_admits_every_concurrent_trial() -> None:
    made = breaker.breakers(half_open_max_calls=1)
    assert await breaker.concurrent_trials(*made["recommended"], callers=10) == 1
    assert await breaker.concurrent_trials(*made["sketch"], callers=10) == 10


def test_a_bad_outage_config_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        breaker.OutageConfig(mode="flaky")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outage_s"):
        breaker.OutageConfig(outage_s=0)


@pytest.fixture
def proxy(services: infra.Services) -> Iterator[FaultProxy]:
    parts = urlsplit(services.redis_url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
    with FaultProxy("redis", upstream=upstream, rng=random.Random(1)) as started:
        yield started


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_an_outage_run_fails_fast_and_recovers(
    proxy: FaultProxy, run_ns: infra.RunNamespace, mode: breaker.Mode
) -> None:
    # after_s is a liveness bound (15x the open timeout): on a loaded machine a hung
    # connection's trial can take several open periods to come back closed
    config = breaker.OutageConfig(
        before_s=0.3, outage_s=0.6, after_s=3.0, client_timeout_s=0.1, open_timeout_s=0.2, mode=mode
    )
    prefix = f"{run_ns.redis_prefix}breaker-exp:{uuid.uuid4().hex}:"
    runs = await breaker.outage_runs(proxy, prefix, config)
    plain, recommended = runs["no breaker"], runs["recommended"]
    assert plain.count("rejected") == 0 and plain.count("failed") > 0
    assert recommended.count("rejected") > 0
    assert recommended.moved_while_rejected == (0, 0)
    assert recommended.recovery_s is not None
    assert recommended.samples[-1].state is CircuitState.CLOSED
    assert breaker.missing_transitions(recommended) == 0
    assert runs["sketch"].opened() >= 1
    assert runs["resilient cache"].served_while_open == 100.0
    assert runs["resilient cache"].count("fallback") > 0
    assert proxy.enabled and not proxy.toxics()
