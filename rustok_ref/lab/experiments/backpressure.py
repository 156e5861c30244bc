"""A flood through the dispatcher: publishers faster than the subscriber, once per policy.

The review's Sprint 1 says backpressure bounds the event queue and refuses publishers past
its limit; the real controller checks, then increments, with an await between them, so
concurrent publishers can overshoot (reference §4.1). `flood` runs `publishers` concurrent
tasks that together offer `overload` times what the subscriber can handle (its handler
sleeps an exponentially distributed service time, the same seeded sequence for every
policy), then lets the queue drain. It records what the dispatcher's own instruments say
(the depth sampler, the pressure callback, the counters and handler latencies) plus each
item's wait in the queue, so the notebook can plot depth against capacity and watermarks
and compare what each policy accepted, refused and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from rustok_ref.errors import BackpressuredError
from rustok_ref.events.dispatcher import (
    Dispatcher,
    DispatcherConfig,
    LatencySummary,
    Policy,
    Pressure,
    SubscriberOptions,
)

POLICIES: tuple[Policy, ...] = tuple(Policy)
TOPIC = "order.placed"
SUBSCRIBER = "projection"


class FloodConfig(BaseModel):
    """The flood's sizes; the subscriber's nominal rate is concurrency / handler_ms."""

    model_config = ConfigDict(frozen=True)

    events: int = Field(default=2_000, ge=1, description="Items offered in all.")
    publishers: int = Field(default=8, ge=1, description="Concurrent publishing tasks.")
    capacity: int = Field(default=200, ge=1, description="The subscriber's queue capacity.")
    concurrency: int = Field(default=1, ge=1, description="The subscriber's worker tasks.")
    handler_ms: float = Field(default=1.0, gt=0, description="Mean handler service time.")
    overload: float = Field(default=3.0, gt=0, description="Offered rate / nominal rate.")
    sample_ms: float = Field(default=5.0, gt=0, description="Depth sampler period.")

    @property
    def nominal_rate(self) -> float:
        """Items per second the subscriber handles at the mean service time."""
        return self.concurrency * 1000.0 / self.handler_ms

    def options(self, policy: Policy) -> SubscriberOptions:
        lossy = policy in (Policy.DROP_OLDEST, Policy.DROP_NEWEST)
        return SubscriberOptions(
            capacity=self.capacity, policy=policy, lossy=lossy, concurrency=self.concurrency
        )


@dataclass(frozen=True)
class FloodRun:
    """One policy's flood. Times are seconds from the first submit; `queue_wait` is each
    handled item's time from its submit to its handler's start."""

    policy: Policy
    capacity: int
    high_depth: int
    low_depth: int
    offered: int
    accepted: int
    rejected: int
    dropped: int
    handled: int
    peak_depth: int
    publish_seconds: float
    seconds: float
    depth: tuple[tuple[float, int], ...]
    pressure: tuple[tuple[float, Pressure], ...]
    handler_latency: LatencySummary
    queue_wait: tuple[float, ...]

    @property
    def overshoot(self) -> int:
        """Items the queue held beyond its capacity at its peak (0 when bounded)."""
        return max(0, self.peak_depth - self.capacity)

    @property
    def offered_rate(self) -> float:
        """Items offered per second while the publishers ran (slowed under `block`)."""
        return self.offered / self.publish_seconds if self.publish_seconds else 0.0

    @property
    def handled_rate(self) -> float:
        """Items handled per second over the whole run, drain included."""
        return self.handled / self.seconds if self.seconds else 0.0

    @property
    def lost(self) -> int:
        """Offered items neither handled nor counted as rejected or dropped (must be 0)."""
        return self.offered - self.handled - self.rejected - self.dropped

    def wait_percentiles(self) -> LatencySummary:
        """p50/p95/p99 of `queue_wait` (nearest rank, like the dispatcher's latencies)."""
        return percentiles(self.queue_wait)


def percentiles(values: Sequence[float]) -> LatencySummary:
    """Nearest-rank p50, p95 and p99 of `values` (None when there are none)."""
    if not values:
        return LatencySummary(0, None, None, None)
    if len(values) == 1:
        return LatencySummary(1, values[0], values[0], values[0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return LatencySummary(len(values), cuts[49], cuts[94], cuts[98])


async def flood(policy: Policy, config: FloodConfig, *, seed: int) -> FloodRun:
    """Offer `config.events` items through a fresh dispatcher under `policy`; drain it."""
    rng = random.Random(seed)
    service_times = [rng.expovariate(1000.0 / config.handler_ms) for _ in range(config.events)]
    clock = time.perf_counter
    waits: list[float] = []
    pressure: list[tuple[float, Pressure]] = []
    start = clock()

    async def handler(item: tuple[int, float]) -> None:
        index, submitted = item
        waits.append(clock() - submitted)
        await asyncio.sleep(service_times[index])

    dispatcher: Dispatcher[tuple[int, float]] = Dispatcher(
        DispatcherConfig(
            sample_interval_s=config.sample_ms / 1000.0,
            sample_capacity=max(10_000, config.events * 20),
        ),
        on_pressure=lambda _name, state: pressure.append((clock() - start, state)),
        clock=clock,
    )
    dispatcher.subscribe(SUBSCRIBER, handler, topics=[TOPIC], options=config.options(policy))
    per_publisher_rate = config.overload * config.nominal_rate / config.publishers

    async def publish(indices: range) -> None:
        for k, index in enumerate(indices):
            due = start + k / per_publisher_rate
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            # A refusal is counted by the dispatcher; a stream consumer would leave the entry
            # pending for redelivery.
            with contextlib.suppress(BackpressuredError):
                await dispatcher.submit(TOPIC, (index, clock()))

    shares = [range(p, config.events, config.publishers) for p in range(config.publishers)]
    async with dispatcher:
        await asyncio.gather(*(publish(share) for share in shares))
        published = clock()
    finished = clock()
    metrics = dispatcher.metrics().subscribers[SUBSCRIBER]
    options = config.options(policy)
    return FloodRun(
        policy=policy,
        capacity=config.capacity,
        high_depth=options.high_depth,
        low_depth=options.low_depth,
        offered=config.events,
        accepted=metrics.accepted,
        rejected=metrics.rejected,
        dropped=metrics.dropped,
        handled=metrics.handled,
        peak_depth=metrics.peak_depth,
        publish_seconds=published - start,
        seconds=finished - start,
        depth=tuple((at - start, depth) for at, depth in dispatcher.depth_samples),
        pressure=tuple(pressure),
        handler_latency=metrics.latency,
        queue_wait=tuple(waits),
    )


async def flood_all(
    config: FloodConfig, *, seed: int, policies: Sequence[Policy] = POLICIES
) -> list[FloodRun]:
    """`flood` under each policy in turn, with the same seed (the same service times)."""
    return [await flood(policy, config, seed=seed) for policy in policies]
