"""Measuring the outbox pipeline: a rate ramp for the sustainable event rate, and a delivery
audit (duplicates and reorderings per aggregate) of what reached the streams or a handler.

`ramp()` runs the real path, outbox INSERT -> relay -> Redis Stream -> consumer -> handler
transaction, with a producer that appends events at increasing rates. A rate is sustained
when the producer kept up with it, every event of the step was handled within the step plus
a drain period, and the p99 end-to-end lag (occurred_at -> handled) stayed under a bound.
The sustainable rate is the highest sustained step; the ramp then runs steps at 50% and 80%
of it and reports their lag, the figures the review's backpressure claims need. The 05_outbox
notebook and `tests/benchmarks/test_relay_bench.py` call it. Producer, relay and consumer
share the caller's event loop (one process, one core), so the rate found is a floor for a
deployment that runs the relay and the consumers as processes of their own.

Why not Locust or k6: they drive request load and measure request latency; here the load is
rows appended to a table and the latency ends in a consumer's transaction, which only the
pipeline's own hooks (`on_handled`) can observe.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.events import outbox
from rustok_ref.events.consumer import ConsumerConfig, StreamConsumer
from rustok_ref.events.dispatcher import _Reservoir
from rustok_ref.events.envelope import EventEnvelope, ProductUpdated, new_envelope
from rustok_ref.events.relay import OutboxRelay, RelayConfig
from rustok_ref.storage.unit_of_work import UnitOfWork

_POLL_S = 0.02


@dataclass(frozen=True)
class Sighting:
    """An event seen once: in a stream entry or by a handler, in the order seen."""

    event_id: str
    aggregate_id: str
    version: int | None


@dataclass(frozen=True)
class DeliveryAudit:
    """Sightings, distinct events, duplicates (sightings beyond the first of an event) and
    reorderings: first sightings whose aggregate version is below one already seen for
    that aggregate (a duplicate arriving late is a duplicate, not a reordering)."""

    sightings: int
    events: int
    duplicates: int
    reorderings: int

    @classmethod
    def of(cls, sightings: Iterable[Sighting]) -> DeliveryAudit:
        seen: set[str] = set()
        highest: dict[str, int] = {}
        count = reorderings = 0
        for sighting in sightings:
            count += 1
            if sighting.event_id in seen:
                continue
            seen.add(sighting.event_id)
            if sighting.version is None:
                continue
            top = highest.get(sighting.aggregate_id)
            if top is not None and sighting.version < top:
                reorderings += 1
            else:
                highest[sighting.aggregate_id] = sighting.version
        return cls(count, len(seen), count - len(seen), reorderings)


async def stream_sightings(
    redis: aioredis.Redis, streams: Sequence[str], *, page: int = 1_000
) -> list[Sighting]:
    """Every entry of the relay's streams, stream by stream in stream order (XRANGE)."""
    found: list[Sighting] = []
    for stream in streams:
        start = "-"
        while True:
            entries: Any = await redis.xrange(stream, start, "+", count=page)
            for _, fields in entries:
                version = fields.get(b"version", b"")
                found.append(
                    Sighting(
                        fields[b"id"].decode(),
                        fields[b"aggregateid"].decode(),
                        int(version) if version else None,
                    )
                )
            if len(entries) < page:
                break
            start = "(" + entries[-1][0].decode()
    return found


@dataclass(frozen=True)
class LagFigures:
    """End-to-end lag (occurred_at -> handled) of the events of one step, in seconds."""

    rate: float
    events: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class RampStep:
    target_rate: float
    offered_rate: float
    """What the producer managed, events per second."""
    lag: LagFigures
    unhandled: int
    """Events of the step not handled by the end of its drain period."""
    sustained: bool


@dataclass(frozen=True)
class RampResult:
    steps: list[RampStep]
    sustainable_rate: float | None
    at_50: LagFigures | None
    at_80: LagFigures | None
    lag_bound_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pipeline:
    """The producer's side of a running relay + consumer, and what the handler saw."""

    sessions: async_sessionmaker[AsyncSession]
    tenant_id: UUID
    aggregates: list[UUID]
    handled: dict[UUID, float] = field(default_factory=dict)
    versions: dict[UUID, int] = field(default_factory=dict)

    def observe(self, envelope: EventEnvelope, lag_s: float) -> None:
        self.handled[envelope.id] = lag_s

    async def produce(self, rate: float, seconds: float, tick_s: float) -> tuple[list[UUID], float]:
        """Append events at `rate` per second for `seconds`, round-robin over the
        aggregates; returns their ids and the rate achieved."""
        ids: list[UUID] = []
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < seconds:
            due = int(rate * elapsed) - len(ids)
            if due > 0:
                events = [self._next_event(len(ids) + n) for n in range(due)]
                async with UnitOfWork(self.sessions, tenant_id=self.tenant_id) as uow:
                    await outbox.append(uow, *events)
                    await uow.commit()
                ids.extend(event.id for event in events)
            await asyncio.sleep(tick_s)
            elapsed = time.perf_counter() - start
        return ids, len(ids) / elapsed

    def _next_event(self, n: int) -> EventEnvelope:
        aggregate = self.aggregates[n % len(self.aggregates)]
        version = self.versions.get(aggregate, 0) + 1
        self.versions[aggregate] = version
        return new_envelope(
            ProductUpdated(product_id=aggregate),
            tenant_id=self.tenant_id,
            aggregate_version=version,
        )

    async def drain(self, ids: Sequence[UUID], seconds: float) -> int:
        """Wait up to `seconds` for every id to be handled; returns how many were not."""
        deadline = time.perf_counter() + seconds
        while True:
            missing = sum(1 for event_id in ids if event_id not in self.handled)
            if missing == 0 or time.perf_counter() >= deadline:
                return missing
            await asyncio.sleep(_POLL_S)

    def lag(self, rate: float, ids: Sequence[UUID]) -> LagFigures:
        lags = [self.handled[event_id] for event_id in ids if event_id in self.handled]
        if not lags:
            return LagFigures(rate, len(ids), None, None, None)
        reservoir = _Reservoir(len(lags))
        for lag in lags:
            reservoir.record(lag)
        summary = reservoir.summary()
        return LagFigures(rate, len(ids), summary.p50, summary.p99, max(lags))


@contextlib.asynccontextmanager
async def _running(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    prefix: str,
    aggregates: int,
    relay_config: RelayConfig,
    consumer_config: ConsumerConfig,
) -> AsyncIterator[_Pipeline]:
    pipeline = _Pipeline(sessions, uuid.uuid4(), [uuid.uuid4() for _ in range(aggregates)])

    async def no_effect(_uow: UnitOfWork, _event: EventEnvelope) -> None:
        return None

    relay = OutboxRelay(sessions, redis, prefix=prefix, config=relay_config)
    consumer = StreamConsumer(
        redis,
        sessions,
        group=f"ramp-{uuid.uuid4().hex[:8]}",
        handler=no_effect,
        aggregate_types=["product"],
        prefix=prefix,
        config=consumer_config,
        on_handled=pipeline.observe,
    )
    stop = asyncio.Event()
    await consumer.setup()
    tasks = [
        asyncio.create_task(relay.run(stop), name="ramp-relay"),
        asyncio.create_task(consumer.run(stop), name="ramp-consumer"),
    ]
    try:
        yield pipeline
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def ramp(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    prefix: str,
    rates: Sequence[float],
    step_s: float = 2.0,
    drain_s: float = 2.0,
    lag_bound_s: float = 1.0,
    recover_s: float = 60.0,
    aggregates: int = 200,
    tick_s: float = 0.02,
    relay_config: RelayConfig | None = None,
    consumer_config: ConsumerConfig | None = None,
) -> RampResult:
    """Step through `rates` (events/s, increasing) until one is not sustained, then measure
    the lag at 50% and 80% of the highest sustained rate. `prefix` is the Redis prefix of
    the run (the streams and the consumer group go under it)."""
    if not rates or list(rates) != sorted(rates) or rates[0] <= 0:
        raise ValueError("rates must be positive and increasing")
    steps: list[RampStep] = []
    async with _running(
        sessions,
        redis,
        prefix=prefix,
        aggregates=aggregates,
        relay_config=relay_config or RelayConfig(idle_s=0.01),
        consumer_config=consumer_config or ConsumerConfig(),
    ) as pipeline:

        async def step(rate: float) -> RampStep:
            ids, offered = await pipeline.produce(rate, step_s, tick_s)
            unhandled = await pipeline.drain(ids, drain_s)
            lag = pipeline.lag(rate, ids)
            sustained = (
                unhandled == 0
                and offered >= 0.9 * rate
                and lag.p99_s is not None
                and lag.p99_s <= lag_bound_s
            )
            if unhandled:  # let the backlog clear before the next measurement
                await pipeline.drain(ids, recover_s)
            return RampStep(rate, offered, lag, unhandled, sustained)

        for rate in rates:
            steps.append(await step(rate))
            if not steps[-1].sustained:
                break
        sustained = [s.target_rate for s in steps if s.sustained]
        best = max(sustained) if sustained else None
        at_50 = at_80 = None
        if best is not None:
            at_50 = (await step(best * 0.5)).lag
            at_80 = (await step(best * 0.8)).lag
    return RampResult(steps, best, at_50, at_80, lag_bound_s)
