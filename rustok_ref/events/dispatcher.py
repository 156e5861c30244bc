"""The dispatcher: bounded per-subscriber queues between the stream consumers and the handlers.

Why we wrote it: the path from a Redis Streams consumer to its handlers (projections, sagas,
GraphQL subscriptions) needs, in one asyncio object, a bounded queue with a choice of policy
when full (block, reject with a `Backpressured` result as in Orleans, or drop for lossy
subscribers), high/low watermarks with hysteresis, per-subscriber concurrency, retry then
dead-letter, an acknowledgement per item and the metrics the reports plot. `asyncio.Queue` and
anyio's memory streams only block or refuse; aiojobs bounds concurrency but has neither drop
policies nor watermarks; tenacity retries one call but knows no queue. No maintained library
combines them, so this module does, with as little per-item work as it can.

The model. Each subscriber owns a mailbox (its queue, `concurrency` worker tasks, its options).
`submit(topic, item, ack)` fans the item out to every subscriber of the topic. When a durable
subscriber's mailbox is full, its policy decides: `block` makes `submit` wait (the consumer
stops calling XREADGROUP meanwhile), `reject` raises `BackpressuredError` before the item
reaches any mailbox (the consumer leaves the entry un-acked; Redis redelivers it). A subscriber
may drop (`drop_oldest`, `drop_newest`) only if it is explicitly `lossy`, and every drop is
counted. `ack(outcome)` runs once per accepted item, after every subscriber has settled it
(handled, dead-lettered or dropped), so the consumer XACKs only finished entries. For each
subscriber, nothing disappears unaccounted:
`accepted == handled + failed + depth + in_flight + dropped + abandoned`.

Depth is the number of queued items, in-flight ones excluded (like `asyncio.Queue`): memory
is bounded by `capacity + concurrency` per subscriber. Pressure follows the real controller's
states (reference §4.1): Warning from the low watermark, Critical from the high one, and, with
hysteresis, Critical is released only below the low watermark. The dispatcher is under
pressure while any durable subscriber is Critical; lossy subscribers shed load instead.

Real defects fixed (reference §4.1-4.3): the check and the enqueue happen with no await between
them, so concurrent publishers cannot overshoot the capacity; depth is the queue's length, so
no release can underflow it into a permanent Critical; Warning and Critical are counted per
crossing, not per event; a slot belongs to one subscriber's mailbox, so two subscribers never
release one slot twice; retries back off exponentially (capped) instead of a fixed delay, and
a handler that exhausts them is dead-lettered with its error instead of only logged;
`max_queue_depth` is enforced, not an unused setting; and a dropped item is never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rustok_ref.errors import BackpressuredError

T = TypeVar("T")

logger = logging.getLogger(__name__)


class Policy(StrEnum):
    """What a full mailbox does with one more item."""

    BLOCK = "block"
    REJECT = "reject"
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


_DROPPING = frozenset({Policy.DROP_OLDEST, Policy.DROP_NEWEST})


class Pressure(StrEnum):
    """The real controller's states, from a mailbox's depth (with hysteresis here)."""

    NORMAL = "normal"
    WARNING = "warning"
    CRITICAL = "critical"


class Outcome(StrEnum):
    """How an accepted item was settled; the argument of its `ack`."""

    HANDLED = "handled"
    DROPPED = "dropped"
    DEAD_LETTERED = "dead_lettered"
    UNROUTED = "unrouted"  # no subscriber wants the topic


# With fan-out, an item's outcome is its worst delivery's.
_SEVERITY = {Outcome.HANDLED: 0, Outcome.DROPPED: 1, Outcome.DEAD_LETTERED: 2}

Handler = Callable[[T], Awaitable[object]]
Ack = Callable[[Outcome], object]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SubscriberOptions(BaseModel):
    """One subscriber's mailbox: size, policy when full, watermarks, workers, retries."""

    model_config = ConfigDict(frozen=True)

    capacity: int = Field(default=10_000, ge=1)
    policy: Policy = Policy.BLOCK
    lossy: bool = Field(default=False, description="Must be set to drop; drops count as lost.")
    concurrency: int = Field(default=1, ge=1, description="Worker tasks; 1 keeps order.")
    high_watermark: float = Field(default=0.9, gt=0, le=1)
    low_watermark: float = Field(default=0.7, gt=0, le=1)
    max_attempts: int = Field(default=3, ge=1, description="Handler calls before dead-letter.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.low_watermark >= self.high_watermark:
            raise ValueError("low_watermark must be below high_watermark")
        if (self.policy in _DROPPING) != self.lossy:
            raise ValueError("drop_oldest/drop_newest need lossy=True, and lossy needs one")
        return self

    @property
    def high_depth(self) -> int:
        """Depth from which the mailbox is Critical (truncated like the real code, >= 1)."""
        return max(1, int(self.capacity * self.high_watermark))

    @property
    def low_depth(self) -> int:
        """Depth from which it is Warning, and below which Critical is released."""
        return max(1, int(self.capacity * self.low_watermark))


class DispatcherConfig(BaseModel):
    """Settings shared by every subscriber of one dispatcher."""

    model_config = ConfigDict(frozen=True)

    backoff_base_s: float = Field(default=0.1, ge=0, description="First retry's delay.")
    backoff_max_s: float = Field(default=5.0, ge=0, description="Cap of the doubling delay.")
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After of a rejection.")
    dead_letter_capacity: int = Field(default=1_000, ge=0, description="Dead letters kept.")
    latency_reservoir: int = Field(default=1_024, ge=1, description="Latest handler latencies.")
    sample_interval_s: float | None = Field(
        default=None, gt=0, description="Depth sampler period; None: no sampler task."
    )
    sample_capacity: int = Field(default=10_000, ge=1, description="Depth samples kept.")


@dataclass(frozen=True, slots=True)
class DeadLetter(Generic[T]):
    """An item whose handler failed `attempts` times; `error` is the last failure."""

    subscriber: str
    item: T
    error: Exception
    attempts: int


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Handler latency percentiles in seconds over the latest calls (None before any)."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class SubscriberMetrics:
    name: str
    policy: Policy
    lossy: bool
    capacity: int
    concurrency: int
    pressure: Pressure
    depth: int
    peak_depth: int
    in_flight: int
    accepted: int
    rejected: int
    dropped: int
    handled: int
    failed: int
    retried: int
    abandoned: int
    warnings: int  # crossings into Warning
    criticals: int  # crossings into Critical
    latency: LatencySummary


@dataclass(frozen=True, slots=True)
class DispatcherMetrics:
    """A snapshot; totals are sums over subscribers, `rejected` counts refused submits."""

    pressure: Pressure
    rejected: int
    unrouted: int
    subscribers: Mapping[str, SubscriberMetrics]

    def _total(self, field: str) -> int:
        return sum(getattr(m, field) for m in self.subscribers.values())

    @property
    def depth(self) -> int:
        return self._total("depth")

    @property
    def accepted(self) -> int:
        return self._total("accepted")

    @property
    def dropped(self) -> int:
        return self._total("dropped")

    @property
    def handled(self) -> int:
        return self._total("handled")

    @property
    def failed(self) -> int:
        return self._total("failed")


class _Reservoir:
    """The latest `size` latencies in a ring: O(1) per record, sorted only when read."""

    __slots__ = ("count", "size", "values")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values = [0.0] * size
        self.count = 0

    def record(self, seconds: float) -> None:
        self.values[self.count % self.size] = seconds
        self.count += 1

    def summary(self) -> LatencySummary:
        kept = sorted(self.values[: min(self.count, self.size)])
        if not kept:
            return LatencySummary(self.count, None, None, None)

        def rank(q: float) -> float:  # nearest rank
            return kept[max(0, math.ceil(q * len(kept)) - 1)]

        return LatencySummary(self.count, rank(0.50), rank(0.95), rank(0.99))


def _call_safely(what: str, callback: Callable[..., object], *arguments: Any) -> None:
    """Run a caller's callback; its failure is logged, never allowed to stop a worker."""
    try:
        callback(*arguments)
    except Exception:
        logger.exception("dispatcher %s callback failed", what)


class _Join:
    """Calls the item's ack once every subscriber it went to has settled it."""

    __slots__ = ("ack", "outcome", "remaining")

    def __init__(self, ack: Ack, remaining: int) -> None:
        self.ack = ack
        self.remaining = remaining
        self.outcome = Outcome.HANDLED

    def __call__(self, outcome: Outcome) -> None:
        if _SEVERITY[outcome] > _SEVERITY[self.outcome]:
            self.outcome = outcome
        self.remaining -= 1
        if self.remaining == 0:
            _call_safely("ack", self.ack, self.outcome)


class _Mailbox(Generic[T]):
    """One subscriber: its queue, waiters, pressure state and counters."""

    def __init__(
        self,
        name: str,
        handler: Handler[T],
        topics: frozenset[str] | None,
        options: SubscriberOptions,
        on_pressure: Callable[[_Mailbox[T], Pressure], None],
        latency_reservoir: int,
    ) -> None:
        self.name = name
        self.handler = handler
        self.topics = topics
        self.options = options
        self.capacity = options.capacity
        self.lossy = options.lossy
        self.drop_newest = options.policy is Policy.DROP_NEWEST
        self.high_depth = options.high_depth
        self.low_depth = options.low_depth
        self.on_pressure = on_pressure
        self.queue: deque[tuple[T, Ack | None]] = deque()
        self.idle: deque[asyncio.Future[None]] = deque()  # workers waiting for an item
        self.putters: deque[asyncio.Future[None]] = deque()  # submitters waiting for space
        self.workers: list[asyncio.Task[None]] = []
        self.stopping = False
        self.pressure = Pressure.NORMAL
        self.latency = _Reservoir(latency_reservoir)
        self.peak_depth = self.in_flight = 0
        self.accepted = self.rejected = self.dropped = self.abandoned = 0
        self.handled = self.failed = self.retried = 0
        self.warnings = self.criticals = 0

    def put(self, item: T, ack: Ack | None) -> None:
        """Enqueue without waiting; a full mailbox here is a lossy one, which drops."""
        queue = self.queue
        self.accepted += 1
        if len(queue) >= self.capacity:
            self.dropped += 1
            if self.drop_newest:
                if ack is not None:
                    _call_safely("ack", ack, Outcome.DROPPED)
                return
            _, dropped_ack = queue.popleft()
            if dropped_ack is not None:
                _call_safely("ack", dropped_ack, Outcome.DROPPED)
        queue.append((item, ack))
        depth = len(queue)
        if depth > self.peak_depth:
            self.peak_depth = depth
        if depth >= self.low_depth:
            self._rise(depth)
        if self.idle:
            _wake_one(self.idle)

    def took(self) -> None:
        """After a worker (or close) took an item out: release pressure, wake a submitter."""
        if self.pressure is not Pressure.NORMAL and len(self.queue) < self.low_depth:
            self._set_pressure(Pressure.NORMAL)
        if self.putters:
            _wake_one(self.putters)

    def succeeded(self, seconds: float) -> None:
        self.latency.record(seconds)
        self.handled += 1

    def _rise(self, depth: int) -> None:
        if depth >= self.high_depth:
            if self.pressure is not Pressure.CRITICAL:
                self.criticals += 1
                self._set_pressure(Pressure.CRITICAL)
        elif self.pressure is Pressure.NORMAL:
            self.warnings += 1
            self._set_pressure(Pressure.WARNING)

    def _set_pressure(self, state: Pressure) -> None:
        previous, self.pressure = self.pressure, state
        self.on_pressure(self, previous)

    async def wait_for(self, waiters: deque[asyncio.Future[None]]) -> None:
        future = asyncio.get_running_loop().create_future()
        waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():
                with contextlib.suppress(ValueError):
                    waiters.remove(future)
            else:  # woken, then cancelled: pass the wake-up on
                _wake_one(waiters)
            raise

    def metrics(self) -> SubscriberMetrics:
        return SubscriberMetrics(
            name=self.name,
            policy=self.options.policy,
            lossy=self.lossy,
            capacity=self.capacity,
            concurrency=self.options.concurrency,
            pressure=self.pressure,
            depth=len(self.queue),
            peak_depth=self.peak_depth,
            in_flight=self.in_flight,
            accepted=self.accepted,
            rejected=self.rejected,
            dropped=self.dropped,
            handled=self.handled,
            failed=self.failed,
            retried=self.retried,
            abandoned=self.abandoned,
            warnings=self.warnings,
            criticals=self.criticals,
            latency=self.latency.summary(),
        )


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        future = waiters.popleft()
        if not future.done():
            future.set_result(None)
            return


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        _wake_one(waiters)


class Dispatcher(Generic[T]):
    """Routes already-validated items to their subscribers' handlers, with backpressure.

    `async with Dispatcher(config) as d:` starts the workers and, on exit, drains them.
    `on_pressure(subscriber, state)` is called on every state change, and a consumer whose
    subscribers reject can stop reading until `wait_relieved()` returns; `on_dead_letter` is
    called with each `DeadLetter`. `clock` (seconds, any monotonic origin: latencies and
    sample times) and `sleep` (retry backoff, sampler period) are injectable so tests never
    wait on real time.
    """

    def __init__(
        self,
        config: DispatcherConfig | None = None,
        *,
        on_pressure: Callable[[str, Pressure], object] | None = None,
        on_dead_letter: Callable[[DeadLetter[T]], object] | None = None,
        clock: Clock = time.perf_counter,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config or DispatcherConfig()
        self._on_pressure = on_pressure
        self._on_dead_letter = on_dead_letter
        self._clock = clock
        self._sleep = sleep
        self._mailboxes: dict[str, _Mailbox[T]] = {}
        self._routes: dict[str, tuple[_Mailbox[T], ...]] = {}
        self._critical = 0  # durable mailboxes now Critical
        self._relieved = asyncio.Event()
        self._relieved.set()
        self._started = False
        self._closed = False
        self._sampler: asyncio.Task[None] | None = None
        self._rejected = 0
        self._unrouted = 0
        self.dead_letters: deque[DeadLetter[T]] = deque(maxlen=self.config.dead_letter_capacity)
        self._samples: deque[tuple[float, int]] = deque(maxlen=self.config.sample_capacity)

    # -- set-up -----------------------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        handler: Handler[T],
        *,
        topics: Iterable[str] | None = None,
        options: SubscriberOptions | None = None,
    ) -> None:
        """Register `handler` for `topics` (None: every topic) under a unique `name`."""
        if self._closed:
            raise RuntimeError("dispatcher is closed")
        if name in self._mailboxes:
            raise ValueError(f"subscriber {name!r} already registered")
        mailbox = _Mailbox(
            name,
            handler,
            None if topics is None else frozenset(topics),
            options or SubscriberOptions(),
            self._pressure_changed,
            self.config.latency_reservoir,
        )
        self._mailboxes[name] = mailbox
        self._routes.clear()
        if self._started:
            self._spawn(mailbox)

    def start(self) -> None:
        """Start every subscriber's workers (and the sampler); needs a running loop."""
        if self._started:
            return
        self._started = True
        for mailbox in self._mailboxes.values():
            self._spawn(mailbox)
        if self.config.sample_interval_s is not None:
            self._sampler = asyncio.create_task(
                self._sample_every(self.config.sample_interval_s), name="dispatcher-sampler"
            )

    def _spawn(self, mailbox: _Mailbox[T]) -> None:
        mailbox.workers.extend(
            asyncio.create_task(self._work(mailbox), name=f"dispatcher-{mailbox.name}-{i}")
            for i in range(mailbox.options.concurrency)
        )

    async def close(self, *, drain: bool = True) -> list[T]:
        """Refuse new items, let in-flight handlers finish and stop the workers.

        With `drain`, queued items are handled first. Without, they are taken out unhandled
        and returned (once each, even if queued for several subscribers): their ack never
        runs, so their stream entries stay pending and are redelivered.
        """
        self._closed = True
        abandoned: dict[int, T] = {}
        for mailbox in self._mailboxes.values():
            _wake_all(mailbox.putters)
            while not drain and mailbox.queue:
                item, _ = mailbox.queue.popleft()
                mailbox.abandoned += 1
                abandoned[id(item)] = item
                mailbox.took()
        if drain:
            self.start()
        for mailbox in self._mailboxes.values():
            mailbox.stopping = True
            _wake_all(mailbox.idle)
        await asyncio.gather(*(w for m in self._mailboxes.values() for w in m.workers))
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        return list(abandoned.values())

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close(drain=True)

    # -- the hot path -----------------------------------------------------------------------

    async def submit(self, topic: str, item: T, ack: Ack | None = None) -> None:
        """Hand `item` to every subscriber of `topic`; `ack(outcome)` runs once it is settled.

        Returns once every mailbox took it: at once, or after waiting for space under the
        `block` policy. Raises `BackpressuredError` (the item went nowhere, `ack` never runs)
        under `reject` when a mailbox is full, or when the dispatcher is closed.
        """
        route = self._routes.get(topic)
        if route is None:
            route = self._route(topic)
        while True:
            if self._closed:
                raise BackpressuredError(
                    "dispatcher is closed", retry_after=self.config.retry_after_s
                )
            for mailbox in route:
                if len(mailbox.queue) >= mailbox.capacity and not mailbox.lossy:
                    await self._when_full(mailbox)
                    break
            else:
                break
        if not route:
            self._unrouted += 1
            if ack is not None:
                _call_safely("ack", ack, Outcome.UNROUTED)
        elif len(route) == 1:
            route[0].put(item, ack)
        else:
            joined = None if ack is None else _Join(ack, len(route))
            for mailbox in route:
                mailbox.put(item, joined)

    async def _when_full(self, mailbox: _Mailbox[T]) -> None:
        if mailbox.options.policy is Policy.REJECT:
            mailbox.rejected += 1
            self._rejected += 1
            raise BackpressuredError(
                f"subscriber {mailbox.name!r} is at capacity ({mailbox.capacity})",
                retry_after=self.config.retry_after_s,
                extra={"subscriber": mailbox.name, "capacity": mailbox.capacity},
            )
        await mailbox.wait_for(mailbox.putters)

    def _route(self, topic: str) -> tuple[_Mailbox[T], ...]:
        route = tuple(m for m in self._mailboxes.values() if m.topics is None or topic in m.topics)
        self._routes[topic] = route
        return route

    async def _work(self, mailbox: _Mailbox[T]) -> None:
        queue, handler, clock = mailbox.queue, mailbox.handler, self._clock
        while True:
            if not queue:
                if mailbox.stopping:
                    return
                await mailbox.wait_for(mailbox.idle)
                continue
            item, ack = queue.popleft()
            mailbox.in_flight += 1
            mailbox.took()
            start = clock()
            try:
                await handler(item)
            except Exception as error:
                outcome = await self._retry(mailbox, item, error)
            else:
                mailbox.succeeded(clock() - start)
                outcome = Outcome.HANDLED
            mailbox.in_flight -= 1
            if ack is not None:
                _call_safely("ack", ack, outcome)

    async def _retry(self, mailbox: _Mailbox[T], item: T, error: Exception) -> Outcome:
        """Call again after capped doubling delays, then dead-letter.

        A plain loop rather than tenacity: the first call above is the fast path and must not
        pay for a retry wrapper, and tenacity would not sleep before its own first attempt.
        """
        config = self.config
        attempts = 1
        while attempts < mailbox.options.max_attempts:
            mailbox.retried += 1
            await self._sleep(
                min(config.backoff_max_s, config.backoff_base_s * 2 ** (attempts - 1))
            )
            attempts += 1
            start = self._clock()
            try:
                await mailbox.handler(item)
            except Exception as again:
                error = again
            else:
                mailbox.succeeded(self._clock() - start)
                return Outcome.HANDLED
        mailbox.failed += 1
        letter = DeadLetter(mailbox.name, item, error, attempts)
        logger.warning(
            "dispatcher: %s dead-lettered an item after %d attempts: %r",
            mailbox.name,
            attempts,
            error,
        )
        self.dead_letters.append(letter)
        if self._on_dead_letter is not None:
            _call_safely("dead-letter", self._on_dead_letter, letter)
        return Outcome.DEAD_LETTERED

    # -- pressure ---------------------------------------------------------------------------

    def _pressure_changed(self, mailbox: _Mailbox[T], previous: Pressure) -> None:
        if not mailbox.lossy:
            if mailbox.pressure is Pressure.CRITICAL:
                self._critical += 1
                self._relieved.clear()
            elif previous is Pressure.CRITICAL:
                self._critical -= 1
                if self._critical == 0:
                    self._relieved.set()
        if self._on_pressure is not None:
            _call_safely("pressure", self._on_pressure, mailbox.name, mailbox.pressure)

    @property
    def pressure(self) -> Pressure:
        """Critical while a durable subscriber is; else Warning if one is; else Normal."""
        states = {m.pressure for m in self._mailboxes.values() if not m.lossy}
        for state in (Pressure.CRITICAL, Pressure.WARNING):
            if state in states:
                return state
        return Pressure.NORMAL

    async def wait_relieved(self) -> None:
        """Return once no durable subscriber is Critical (at once if none is)."""
        await self._relieved.wait()

    # -- observation ------------------------------------------------------------------------

    def metrics(self) -> DispatcherMetrics:
        return DispatcherMetrics(
            pressure=self.pressure,
            rejected=self._rejected,
            unrouted=self._unrouted,
            subscribers={name: m.metrics() for name, m in self._mailboxes.items()},
        )

    @property
    def depth(self) -> int:
        """Items queued across subscribers (in-flight ones excluded)."""
        return sum(len(m.queue) for m in self._mailboxes.values())

    def sample(self) -> None:
        """Record `(clock(), depth)`; the sampler task calls it every `sample_interval_s`."""
        self._samples.append((self._clock(), self.depth))

    @property
    def depth_samples(self) -> list[tuple[float, int]]:
        """The latest `sample_capacity` samples, oldest first."""
        return list(self._samples)

    async def _sample_every(self, interval: float) -> None:
        while True:
            self.sample()
            await self._sleep(interval)
