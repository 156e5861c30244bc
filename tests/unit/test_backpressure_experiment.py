"""The flood experiment behind 04_events_backpressure: every offered item is accounted for,
the queue never holds more than its capacity, and each policy does what it says when the
publishers outrun the subscriber.

These runs use real (short) sleeps: the assertions are about counts, never about time, and
hold however fast or slow the machine is, because the offered rate is far above what the
subscriber can take.
"""

from __future__ import annotations

import asyncio

import pytest

from rustok_ref.events.dispatcher import Policy, Pressure
from rustok_ref.lab.experiments.backpressure import (
    FloodConfig,
    FloodRun,
    flood,
    flood_all,
    percentiles,
)

CONFIG = FloodConfig(events=240, publishers=4, capacity=16, handler_ms=0.5, overload=20)


@pytest.fixture(scope="module")
def runs() -> dict[Policy, FloodRun]:
    """One flood per policy, shared by the module (its own loop: the runs are independent)."""
    return {run.policy: run for run in asyncio.run(flood_all(CONFIG, seed=7))}


@pytest.mark.parametrize("policy", list(Policy))
def test_every_offered_item_is_handled_rejected_or_dropped(
    runs: dict[Policy, FloodRun], policy: Policy
) -> None:
    run = runs[policy]
    assert run.offered == CONFIG.events
    assert run.offered == run.accepted + run.rejected
    assert run.accepted == run.handled + run.dropped
    assert run.lost == 0
    assert len(run.queue_wait) == run.handled


@pytest.mark.parametrize("policy", list(Policy))
def test_the_queue_never_exceeds_its_capacity(runs: dict[Policy, FloodRun], policy: Policy) -> None:
    run = runs[policy]
    assert run.peak_depth == CONFIG.capacity  # it filled: the publishers were faster
    assert run.overshoot == 0
    assert run.depth, "the depth sampler recorded nothing"
    assert all(0 <= depth <= CONFIG.capacity for _, depth in run.depth)
    assert [t for t, _ in run.depth] == sorted(t for t, _ in run.depth)


def test_block_slows_the_publishers_and_loses_nothing(runs: dict[Policy, FloodRun]) -> None:
    run = runs[Policy.BLOCK]
    assert (run.rejected, run.dropped, run.handled) == (0, 0, CONFIG.events)


def test_reject_refuses_past_capacity_and_drops_nothing(runs: dict[Policy, FloodRun]) -> None:
    run = runs[Policy.REJECT]
    assert run.rejected > 0
    assert run.dropped == 0


@pytest.mark.parametrize("policy", [Policy.DROP_OLDEST, Policy.DROP_NEWEST])
def test_lossy_policies_drop_and_refuse_nothing(
    runs: dict[Policy, FloodRun], policy: Policy
) -> None:
    run = runs[policy]
    assert run.dropped > 0
    assert run.rejected == 0


@pytest.mark.parametrize("policy", [Policy.BLOCK, Policy.REJECT])
def test_durable_subscribers_go_critical_and_come_back(
    runs: dict[Policy, FloodRun], policy: Policy
) -> None:
    states = [state for _, state in runs[policy].pressure]
    assert Pressure.CRITICAL in states
    assert states[-1] is Pressure.NORMAL  # drained at the end


def test_watermarks_are_the_subscribers() -> None:
    run_options = CONFIG.options(Policy.BLOCK)
    assert (run_options.low_depth, run_options.high_depth) == (11, 14)  # 0.7 and 0.9 of 16


async def test_one_publisher_and_a_roomy_queue_never_refuse() -> None:
    config = FloodConfig(events=50, publishers=1, capacity=100, handler_ms=0.1, overload=0.5)
    run = await flood(Policy.REJECT, config, seed=1)
    assert (run.rejected, run.dropped, run.handled) == (0, 0, 50)
    assert run.handler_latency.count == 50


def test_percentiles_use_nearest_ranks_and_tolerate_small_samples() -> None:
    assert percentiles([]).p50 is None
    assert percentiles([0.5]).p99 == 0.5
    summary = percentiles([float(n) for n in range(1, 101)])
    assert (summary.count, summary.p50, summary.p95, summary.p99) == (100, 50.5, 95.05, 99.01)


def test_the_lossy_flag_follows_the_policy() -> None:
    assert CONFIG.options(Policy.DROP_OLDEST).lossy
    assert not CONFIG.options(Policy.REJECT).lossy
    assert CONFIG.nominal_rate == 2000.0
