"""Redis Streams consumers: a consumer group per handler, per-aggregate lanes, idempotent handling.

A `StreamConsumer` reads the streams of some aggregate types (`relay.stream_name`) in one
consumer group and hands each entry to the dispatcher (`dispatcher.py`), which is the path
from the streams to the handlers (projections, and later sagas and subscriptions):

- **order**: an entry goes to one of `lanes` subscribers by its aggregate id, each with
  concurrency 1, so one aggregate's events are handled one at a time, in stream order, while
  different aggregates proceed in parallel. Redis hands a group's entries to whichever
  consumer asks, so one consumer process per group holds that order (a second one, or a
  restarted one under a new name, takes over a dead one's pending entries with XAUTOCLAIM);
- **acknowledgement after handling**: the dispatcher's ack hook queues the entry's XACK, sent
  in one pipeline with the others; an entry whose handler failed `max_attempts` times is
  copied to `{prefix}events:dead:{group}` with its error, then acknowledged;
- **backpressure**: under the `block` policy a full lane makes `submit` wait, so the consumer
  stops calling XREADGROUP. Under `reject`, the refused entry stays un-acknowledged and its
  lane is parked: later entries of that lane are left pending too (order), and once the
  dispatcher is relieved the consumer re-reads its pending entries (XREADGROUP from id 0) and
  submits them in stream order. On start it reads its pending entries first (a restart);
- **idempotency**: the handler runs in a unit of work (worker role) that also inserts
  `(event_id, consumer)` into `processed_events` (`INSERT ... ON CONFLICT DO NOTHING`); if the
  row was already there the event is a duplicate (a relay's re-publish, a redelivery) and the
  transaction is rolled back, so its effects happen once. The handler runs before the insert:
  a projection rebuild locks the read table and then writes `processed_events`, and the same
  order here means the two cannot deadlock; a handler must therefore keep every effect inside
  the transaction. Rows older than the dedupe window (7 days, Orleans' default) are pruned;
- **trimming**: the relay bounds each stream (`XADD MAXLEN ~`); an entry trimmed away while
  still pending here is counted as `trimmed` and acknowledged (a projection rebuild recovers
  it from the outbox), so size MAXLEN above the backlog a consumer may fall behind by.

Why not a library: walrus and redis-om wrap XREADGROUP but know neither our dispatcher nor a
transaction shared with the idempotency row; Faust and Celery bring their own brokers and
workers. The consumer is a read loop, a routing rule and an ack pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import delete, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.errors import BackpressuredError, RustokError
from rustok_ref.events.dispatcher import (
    DeadLetter,
    Dispatcher,
    DispatcherConfig,
    DispatcherMetrics,
    LatencySummary,
    Outcome,
    SubscriberOptions,
    _Reservoir,
)
from rustok_ref.events.envelope import Catalogue, EventEnvelope, decode_envelope
from rustok_ref.events.relay import stream_fields, stream_name
from rustok_ref.storage.roles import DbRole
from rustok_ref.storage.tables import processed_events
from rustok_ref.storage.unit_of_work import UnitOfWork
from rustok_ref.telemetry import use_correlation_id

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

EventHandler = Callable[[UnitOfWork, EventEnvelope], Awaitable[None]]
"""Applies one event inside the consumer's unit of work (which commits it)."""
HandledObserver = Callable[[EventEnvelope, float], object]
"""Called after each first-time handling with the event and its end-to-end lag (seconds)."""

DEDUPE_WINDOW: Final = timedelta(days=7)
_ENVELOPE = b"envelope"


class ConsumerConfig(BaseModel):
    """A consumer's knobs; `lane` configures each lane's dispatcher mailbox."""

    model_config = ConfigDict(frozen=True)

    lanes: int = Field(default=8, ge=1, description="Parallel lanes, by aggregate id.")
    lane: SubscriberOptions = SubscriberOptions(capacity=1_000)
    read_count: int = Field(default=100, ge=1, description="Entries per XREADGROUP.")
    block_ms: int = Field(default=100, ge=1, description="XREADGROUP BLOCK when idle.")
    claim_idle_ms: int = Field(
        default=30_000, ge=0, description="XAUTOCLAIM entries idle this long (dead consumers)."
    )
    start_id: str = Field(default="0", description="Where a new group starts ('0': all).")
    dedupe_window: timedelta = DEDUPE_WINDOW
    prune_every_s: float = Field(default=3_600.0, gt=0)
    dead_maxlen: int = Field(default=10_000, ge=1, description="MAXLEN ~ of the dead stream.")
    outage_backoff_s: float = Field(default=0.5, gt=0, description="Pause after Redis failed.")
    dispatcher: DispatcherConfig = DispatcherConfig()
    lag_reservoir: int = Field(default=4_096, ge=1)

    @field_validator("lane")
    @classmethod
    def _one_at_a_time(cls, lane: SubscriberOptions) -> SubscriberOptions:
        if lane.concurrency != 1:
            raise ValueError("a lane must have concurrency 1: it keeps an aggregate's order")
        return lane


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry on its way to the handler."""

    stream: str
    entry_id: bytes
    envelope: EventEnvelope


@dataclass(frozen=True, slots=True)
class ConsumerMetrics:
    """Counters since the consumer was built; `lag` is handled time - occurred_at (s)."""

    group: str
    name: str
    submitted: int
    handled: int
    duplicates: int
    parked: int
    recovered: int
    claimed: int
    dead_lettered: int
    poison: int
    trimmed: int
    acked: int
    lag: LatencySummary
    dispatcher: DispatcherMetrics


class StreamConsumer:
    """`await consumer.run(stop)`: set up the group, read, dispatch, ack until `stop` is set,
    then finish the entries in hand (their handlers run, their acks are sent)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        sessions: async_sessionmaker[AsyncSession],
        *,
        group: str,
        handler: EventHandler,
        aggregate_types: Iterable[str],
        prefix: str,
        name: str | None = None,
        config: ConsumerConfig | None = None,
        catalogue: Catalogue | None = None,
        on_handled: HandledObserver | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or ConsumerConfig()
        self.group = group
        self.name = name or f"{group}-{uuid.uuid4().hex[:8]}"
        self.streams = tuple(stream_name(prefix, kind) for kind in sorted(set(aggregate_types)))
        if not self.streams:
            raise ValueError("a consumer needs at least one aggregate type")
        self.dead_stream = f"{prefix}events:dead:{group}"
        self._redis = redis
        self._sessions = sessions
        self._handler = handler
        self._catalogue = catalogue
        self._on_handled = on_handled
        self._clock = clock
        self._monotonic = monotonic
        self._dispatcher: Dispatcher[Delivery] = Dispatcher(
            self.config.dispatcher, on_dead_letter=self._dead_lettered
        )
        self._topics = [f"lane-{lane}" for lane in range(self.config.lanes)]
        for topic in self._topics:
            self._dispatcher.subscribe(
                topic, self._handle, topics=[topic], options=self.config.lane
            )
        self._claim = (
            pg_insert(processed_events)
            .on_conflict_do_nothing()
            .returning(processed_events.c.event_id)
        )
        self._inflight: set[tuple[str, bytes]] = set()
        self._parked: set[int] = set()
        self._recover = True  # read our own pending entries first (a restart)
        self._next_claim = 0.0
        self._next_prune = 0.0
        self._acks: dict[str, list[bytes]] = {}
        self._dead: list[dict[str, bytes | str]] = []
        self._ack_ready = asyncio.Event()
        self._closing = False
        self._lags = _Reservoir(self.config.lag_reservoir)
        self._counts = dict.fromkeys(
            (
                "submitted",
                "handled",
                "duplicates",
                "parked",
                "recovered",
                "claimed",
                "dead_lettered",
                "poison",
                "trimmed",
                "acked",
            ),
            0,
        )

    # -- set-up and the loop -----------------------------------------------------------------

    async def setup(self) -> None:
        """Create the group on every stream (MKSTREAM); an existing group is kept."""
        for stream in self.streams:
            try:
                await self._redis.xgroup_create(
                    stream, self.group, id=self.config.start_id, mkstream=True
                )
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise

    async def run(self, stop: asyncio.Event) -> None:
        await self.setup()
        self._dispatcher.start()
        acker = asyncio.create_task(self._ack_loop(), name=f"consumer-{self.name}-acks")
        try:
            while not stop.is_set():
                try:
                    await self.poll(stop)
                except (RedisError, OSError) as exc:
                    logger.warning("consumer %s: Redis failed: %r", self.name, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.outage_backoff_s)
                await self._maybe_prune()
        finally:
            await self._dispatcher.close(drain=True)
            self._closing = True  # the acker sends what is queued, then ends
            self._ack_ready.set()
            await acker

    async def poll(self, stop: asyncio.Event | None = None) -> int:
        """One pass: take over idle entries of dead consumers (every `claim_idle_ms`),
        re-read our own pending entries when parked or restarting, then read new ones.
        Returns the entries seen."""
        seen = 0
        if self._monotonic() >= self._next_claim:
            self._next_claim = self._monotonic() + self.config.claim_idle_ms / 1000
            if await self._autoclaim():
                self._recover = True
        if self._parked:
            await self._relieved(stop)
        if self._recover or self._parked:
            self._recover = False
            self._parked.clear()
            seen += await self._read_pending()
        block = None if seen or self._parked else self.config.block_ms
        reply: Any = await self._redis.xreadgroup(
            self.group,
            self.name,
            dict.fromkeys(self.streams, ">"),
            count=self.config.read_count,
            block=block,
        )
        for stream, entries in reply or ():
            seen += await self._route_all(stream.decode(), entries)
        return seen

    async def _relieved(self, stop: asyncio.Event | None) -> None:
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._dispatcher.wait_relieved())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()

    async def _read_pending(self) -> int:
        """Our pending entries, oldest first, page by page (XREADGROUP from id 0)."""
        seen = 0
        for stream in self.streams:
            after = b"0"
            while True:
                reply: Any = await self._redis.xreadgroup(
                    self.group, self.name, {stream: after}, count=self.config.read_count
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                after = entries[-1][0]
                fresh = [entry for entry in entries if (stream, entry[0]) not in self._inflight]
                self._counts["recovered"] += len(fresh)
                seen += await self._route_all(stream, fresh)
        return seen

    async def _autoclaim(self) -> int:
        """Move entries idle for `claim_idle_ms` (a dead consumer's) to this consumer."""
        claimed = 0
        for stream in self.streams:
            start: bytes | str = "0-0"
            while True:
                reply: Any = await self._redis.xautoclaim(
                    stream,
                    self.group,
                    self.name,
                    self.config.claim_idle_ms,
                    start_id=start,
                    count=self.config.read_count,
                )
                start, entries = reply[0], reply[1]
                if len(reply) > 2:  # Redis 7 drops trimmed entries from the PEL and says which
                    self._counts["trimmed"] += len(reply[2])
                claimed += sum(
                    1
                    for entry_id, _ in entries
                    if entry_id is not None and (stream, entry_id) not in self._inflight
                )
                if start in (b"0-0", "0-0"):
                    break
        self._counts["claimed"] += claimed
        return claimed

    async def _route_all(self, stream: str, entries: Sequence[Any]) -> int:
        for entry_id, fields in entries:
            await self._route(stream, entry_id, fields)
        return len(entries)

    async def _route(self, stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        key = (stream, entry_id)
        if key in self._inflight:
            return
        if not fields:  # trimmed by MAXLEN while it was pending: nothing left to handle
            self._counts["trimmed"] += 1
            self._queue_ack(stream, entry_id)
            return
        try:
            envelope = decode_envelope(fields.get(_ENVELOPE, b""), self._catalogue)
        except RustokError as exc:
            self._counts["poison"] += 1
            raw = {key.decode(errors="replace"): value for key, value in fields.items()}
            self._queue_dead(stream, entry_id, raw, f"undecodable: {exc}")
            self._queue_ack(stream, entry_id)
            return
        lane = envelope.aggregate_id.int % len(self._topics)
        if lane in self._parked:
            self._counts["parked"] += 1
            return
        delivery = Delivery(stream, entry_id, envelope)
        self._inflight.add(key)
        try:
            await self._dispatcher.submit(
                self._topics[lane], delivery, partial(self._settled, delivery)
            )
        except BackpressuredError:
            self._inflight.discard(key)
            self._parked.add(lane)
            self._counts["parked"] += 1
            return
        self._counts["submitted"] += 1

    # -- handling ----------------------------------------------------------------------------

    async def _handle(self, delivery: Delivery) -> None:
        """The handler and the idempotency row in one transaction; a duplicate rolls back.
        It runs in a span whose parent is the span that wrote the event, under the event's
        correlation id, so what the handler causes stays in the producer's trace."""
        envelope = delivery.envelope
        attributes = {
            "tenant_id": str(envelope.tenant_id),
            "event_id": str(envelope.id),
            "event_type": envelope.event_type,
            "aggregate_id": str(envelope.aggregate_id),
            "correlation_id": envelope.correlation_id,
            "messaging.consumer.group.name": self.group,
        }
        with (
            use_correlation_id(envelope.correlation_id),
            tracer.start_as_current_span(
                f"consume {envelope.event_type}",
                context=envelope.trace_context(),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            ),
        ):
            await self._handle_once(envelope)

    async def _handle_once(self, envelope: EventEnvelope) -> None:
        try:
            async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
                await self._handler(uow, envelope)
                fresh = await uow.session.execute(
                    self._claim, {"event_id": envelope.id, "consumer": self.group}
                )
                if fresh.first() is None:
                    self._counts["duplicates"] += 1
                    return  # leaving the block rolls the duplicate's effects back
                await uow.commit()
        except Exception:
            if await self._processed(envelope):  # the handler tripped over its own duplicate
                self._counts["duplicates"] += 1
                return
            raise
        self._counts["handled"] += 1
        lag = (self._clock() - envelope.occurred_at).total_seconds()
        self._lags.record(lag)
        if self._on_handled is not None:
            self._on_handled(envelope, lag)

    async def _processed(self, envelope: EventEnvelope) -> bool:
        with contextlib.suppress(SQLAlchemyError, OSError):
            async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
                found = await uow.session.execute(
                    select(processed_events.c.event_id).where(
                        processed_events.c.event_id == envelope.id,
                        processed_events.c.consumer == self.group,
                    )
                )
                return found.first() is not None
        return False

    def _settled(self, delivery: Delivery, outcome: Outcome) -> None:
        self._queue_ack(delivery.stream, delivery.entry_id)

    def _dead_lettered(self, letter: DeadLetter[Delivery]) -> None:
        self._counts["dead_lettered"] += 1
        delivery = letter.item
        fields = stream_fields(delivery.envelope)
        self._queue_dead(delivery.stream, delivery.entry_id, fields, repr(letter.error))

    # -- acknowledgements --------------------------------------------------------------------

    def _queue_ack(self, stream: str, entry_id: bytes) -> None:
        """XACK soon; until it is sent the entry counts as in flight, so a re-read of the
        pending entries does not hand it out again."""
        self._inflight.add((stream, entry_id))
        self._acks.setdefault(stream, []).append(entry_id)
        self._ack_ready.set()

    def _queue_dead(
        self, stream: str, entry_id: bytes, fields: Mapping[str, bytes | str], error: str
    ) -> None:
        """The entry's fields plus where it came from and why it is dead."""
        entry = {**fields, "stream": stream, "entry_id": entry_id, "error": error}
        entry["group"] = self.group
        self._dead.append(entry)
        self._ack_ready.set()

    async def _ack_loop(self) -> None:
        """Send queued acknowledgements until the consumer closes. It is stopped by
        `_closing`, not cancelled: redis-py can swallow a cancellation in mid-command."""
        while not (self._closing and not self._acks and not self._dead):
            await self._ack_ready.wait()
            self._ack_ready.clear()
            try:
                await self._flush()
            except (RedisError, OSError) as exc:
                if self._closing:  # left pending: redelivered to the next life
                    logger.warning("consumer %s: final XACK failed: %r", self.name, exc)
                    return
                logger.warning("consumer %s: XACK failed, will retry: %r", self.name, exc)
                await asyncio.sleep(self.config.outage_backoff_s)
                self._ack_ready.set()

    async def _flush(self) -> None:
        """Dead letters first, then the XACKs, in one pipeline; kept for a retry on failure."""
        acks, dead = self._acks, self._dead
        if not acks and not dead:
            return
        self._acks, self._dead = {}, []
        pipe = self._redis.pipeline(transaction=False)
        for entry in dead:
            pipe.xadd(self.dead_stream, entry, maxlen=self.config.dead_maxlen)  # type: ignore[arg-type]
        for stream, ids in acks.items():
            pipe.xack(stream, self.group, *ids)
        try:
            await pipe.execute()
        except BaseException:
            for stream, ids in acks.items():
                self._acks.setdefault(stream, []).extend(ids)
            self._dead[:0] = dead
            raise
        for stream, ids in acks.items():
            self._inflight.difference_update((stream, entry_id) for entry_id in ids)
        self._counts["acked"] += sum(len(ids) for ids in acks.values())

    # -- the dedupe window -------------------------------------------------------------------

    async def _maybe_prune(self) -> None:
        if self._monotonic() < self._next_prune:
            return
        self._next_prune = self._monotonic() + self.config.prune_every_s
        try:
            await prune_processed(self._sessions, self.config.dedupe_window, consumer=self.group)
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("consumer %s: pruning processed_events failed: %r", self.name, exc)

    # -- observation -------------------------------------------------------------------------

    def metrics(self) -> ConsumerMetrics:
        return ConsumerMetrics(
            group=self.group,
            name=self.name,
            lag=self._lags.summary(),
            dispatcher=self._dispatcher.metrics(),
            **self._counts,
        )


async def prune_processed(
    sessions: async_sessionmaker[AsyncSession],
    older_than: timedelta = DEDUPE_WINDOW,
    *,
    consumer: str | None = None,
    now: datetime | None = None,
    batch_size: int = 10_000,
) -> int:
    """Forget idempotency rows older than the dedupe window (of one consumer, or all), in
    batches, each its own transaction; a duplicate arriving later than that is handled again."""
    if older_than < timedelta(0) or batch_size < 1:
        raise ValueError("older_than must not be negative and batch_size must be positive")
    cutoff = func.now() - older_than if now is None else literal(now - older_than)
    old = processed_events.c.processed_at < cutoff
    if consumer is not None:
        old = old & (processed_events.c.consumer == consumer)
    batch = (
        select(processed_events.c.event_id, processed_events.c.consumer)
        .where(old)
        .limit(batch_size)
    )
    removed = 0
    while True:
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            result = await uow.session.execute(
                delete(processed_events).where(
                    tuple_(processed_events.c.event_id, processed_events.c.consumer).in_(batch)
                )
            )
            await uow.commit()
        count: int = result.rowcount  # type: ignore[attr-defined]
        removed += count
        if count < batch_size:
            return removed
