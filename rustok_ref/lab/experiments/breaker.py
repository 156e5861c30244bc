"""A Redis outage through the fault proxy, met with no breaker, the recommended breaker and
the review's sketch; and the sketch's defects as call patterns (review P1.2, seed/README).

`outage_run` makes one caller issue a GET through the proxy every `interval_s` while the
proxy is healthy, then down (`down`: connections dropped and refused; `hang`: every reply
swallowed, so a call waits for the client's timeout), then healthy again. Each call records
its latency, outcome, the breaker's state after it and the proxy's connection and byte
counters around it, so the notebook can plot the state timeline, latency with and without a
breaker, the time to recover, and prove fail-fast by behaviour: calls the breaker rejected
moved no connection and no byte. The `sketch_*` functions replay the sketch's defects on a
fake clock, each beside what the recommended breaker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from rustok_ref.errors import CircuitBreakerOpenError
from rustok_ref.lab.faults import FaultProxy, ProxyStats
from rustok_ref.resilience import (
    BreakerConfig,
    BreakerListener,
    CircuitBreaker,
    CircuitState,
    SketchedCircuitBreaker,
)
from rustok_ref.resilience.breaker import StateChange
from rustok_ref.resilience.cache import ResilientRedisCache

Subject = Literal["no breaker", "recommended", "sketch", "resilient cache"]
SUBJECTS: tuple[Subject, ...] = ("no breaker", "recommended", "sketch", "resilient cache")
Outcome = Literal["ok", "failed", "rejected", "fallback"]
VALUE = b"tenant-cache-metrics"
PROBE = "breaker-probe"
Mode = Literal["down", "hang"]
BLACKHOLE = "outage_blackhole"


@dataclass(frozen=True)
class OutageConfig:
    """Seconds of health before and after the outage, the outage itself, the call pacing,
    the client's timeout and both breakers' settings."""

    before_s: float = 1.0
    outage_s: float = 2.0
    after_s: float = 2.0
    interval_s: float = 0.02
    client_timeout_s: float = 0.2
    mode: Mode = "hang"
    failure_threshold: int = 3
    success_threshold: int = 2
    open_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("down", "hang"):
            raise ValueError(f"mode must be 'down' or 'hang', got {self.mode!r}")
        for name in ("before_s", "outage_s", "after_s", "interval_s", "client_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above zero")

    def recommended(self, clock: Callable[[], float]) -> CircuitBreaker:
        return CircuitBreaker(
            "redis",
            BreakerConfig(
                failure_threshold=self.failure_threshold,
                success_threshold=self.success_threshold,
                half_open_max_calls=1,
                timeout_s=self.open_timeout_s,
            ),
            clock=clock,
        )

    def sketch(self, clock: Callable[[], float]) -> SketchedCircuitBreaker:
        return SketchedCircuitBreaker(
            "redis",
            failure_threshold=self.failure_threshold,
            success_threshold=self.success_threshold,
            half_open_max_calls=1,
            timeout_s=self.open_timeout_s,
            clock=clock,
        )


@dataclass(frozen=True)
class CallSample:
    """One call: start (s from the run's start), latency (s), outcome (`fallback`: the
    resilient cache answered with the right value without Redis), the breaker's state before
    and after it ("closed" without a breaker) and what moved through the proxy meanwhile."""

    at: float
    latency: float
    outcome: Outcome
    before: CircuitState
    state: CircuitState
    connections: int
    bytes: int


@dataclass(frozen=True)
class OutageRun:
    subject: Subject
    config: OutageConfig
    outage: tuple[float, float]
    samples: tuple[CallSample, ...]
    started: float = 0.0  # the breaker's clock when the run started
    transitions: tuple[StateChange, ...] = ()
    metrics_transitions: int | None = None

    def timeline(self) -> list[tuple[float, CircuitState]]:
        """(seconds from the start, state) at each transition the listener reported, from
        closed at 0; without a listener, the state before and after each call."""
        points = [(0.0, CircuitState.CLOSED)]
        if self.metrics_transitions is not None:
            points += [(change.at - self.started, change.new) for change in self.transitions]
        else:
            for sample in self.samples:
                points += [(sample.at, sample.before), (sample.at + sample.latency, sample.state)]
        return points

    def trials(self) -> list[CallSample]:
        """Calls that began with the breaker not closed and still reached the proxy."""
        return [
            s
            for s in self.samples
            if s.before is not CircuitState.CLOSED and (s.connections or s.bytes)
        ]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for s in self.samples if s.outcome == outcome)

    @property
    def moved_while_rejected(self) -> tuple[int, int]:
        """Connections and bytes the proxy saw during calls the breaker rejected (0, 0 is
        fail-fast)."""
        rejected = [s for s in self.samples if s.outcome == "rejected"]
        return sum(s.connections for s in rejected), sum(s.bytes for s in rejected)

    @property
    def served_while_open(self) -> float:
        """Percent of the calls made while the breaker was open that got the right value
        (the resilient cache's graceful degradation)."""
        while_open = [s for s in self.samples if s.before is CircuitState.OPEN]
        if not while_open:
            raise ValueError(f"{self.subject}: no call was made while the breaker was open")
        served = sum(1 for s in while_open if s.outcome in ("ok", "fallback"))
        return 100.0 * served / len(while_open)

    @property
    def recovery_s(self) -> float | None:
        """From Redis's return to the first successful call after it (None: none)."""
        end = self.outage[1]
        for sample in self.samples:
            if sample.at >= end and sample.outcome == "ok":
                return sample.at + sample.latency - end
        return None

    @property
    def time_in_outage_s(self) -> float:
        """Caller time spent in calls that started during the outage."""
        start, end = self.outage
        return sum(s.latency for s in self.samples if start <= s.at < end)

    def opened(self) -> int:
        """Times the breaker went from closed or half-open to open, seen after calls."""
        states = [CircuitState.CLOSED, *(s.state for s in self.samples)]
        return sum(
            1
            for old, new in itertools.pairwise(states)
            if new is CircuitState.OPEN and old is not CircuitState.OPEN
        )


class _Recorder(BreakerListener):
    def __init__(self) -> None:
        self.changes: list[StateChange] = []

    def state_change(self, breaker: CircuitBreaker, change: StateChange) -> None:
        self.changes.append(change)


def _moved(before: ProxyStats, after: ProxyStats) -> tuple[int, int]:
    connections = after.accepted + after.refused - before.accepted - before.refused
    moved = (
        after.bytes_upstream
        + after.bytes_downstream
        - before.bytes_upstream
        - before.bytes_downstream
    )
    return connections, moved


def client_via(proxy: FaultProxy, timeout_s: float) -> aioredis.Redis:
    """A client through the proxy, without retries: each call is one attempt."""
    return aioredis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


async def outage_run(
    subject: Subject, proxy: FaultProxy, prefix: str, config: OutageConfig
) -> OutageRun:
    """One caller through `proxy` to Redis (reading a key under `prefix`) before, during and
    after an outage, guarded by `subject`; the resilient cache reads through its breaker."""
    clock = time.monotonic
    recorder = _Recorder()
    client = client_via(proxy, config.client_timeout_s)
    probe = _Probe(client, prefix)
    if subject == "sketch":
        probe.breaker = config.sketch(clock)
    elif subject != "no breaker":
        recommended = config.recommended(clock)
        recommended.add_listener(recorder)
        probe.breaker = recommended
        if subject == "resilient cache":
            probe.cache = ResilientRedisCache(
                client, prefix, breaker=recommended, call_timeout_s=config.client_timeout_s
            )
    samples: list[CallSample] = []
    start = clock()
    outage = (config.before_s, config.before_s + config.outage_s)
    end = outage[1] + config.after_s
    down = False
    try:
        await probe.prepare()
        start = clock()
        while (now := clock() - start) < end:
            if not down and outage[0] <= now < outage[1]:
                _outage_begins(proxy, config.mode)
                down = True
            elif down and now >= outage[1]:
                _outage_ends(proxy, config.mode)
                down = False
            samples.append(await probe.sample(proxy, start))
            await asyncio.sleep(config.interval_s)
    finally:
        if down:
            _outage_ends(proxy, config.mode)
        await client.aclose()
    return OutageRun(
        subject,
        config,
        outage,
        tuple(samples),
        start,
        tuple(recorder.changes),
        probe.breaker.metrics().transitions if isinstance(probe.breaker, CircuitBreaker) else None,
    )


def _outage_begins(proxy: FaultProxy, mode: Mode) -> None:
    if mode == "down":
        proxy.disable()
    else:
        proxy.add_toxic("timeout", name=BLACKHOLE, timeout=0)


def _outage_ends(proxy: FaultProxy, mode: Mode) -> None:
    if mode == "down":
        proxy.enable()
    else:
        proxy.remove_toxic(BLACKHOLE)


@dataclass
class _Probe:
    """Reads `PROBE` through the subject: the plain client, a breaker, or the resilient
    cache (whose own breaker is `breaker`)."""

    client: aioredis.Redis
    prefix: str
    breaker: CircuitBreaker | SketchedCircuitBreaker | None = None
    cache: ResilientRedisCache | None = None

    async def prepare(self) -> None:
        if self.cache is not None:
            await self.cache.set(PROBE, VALUE)
        else:
            await self.client.set(self.prefix + PROBE, VALUE)

    async def read(self) -> bytes | str | None:
        if self.cache is not None:
            return await self.cache.get(PROBE)
        value: bytes | str | None
        if self.breaker is None:
            value = await self.client.get(self.prefix + PROBE)
        else:
            value = await self.breaker.call_async(self.client.get, self.prefix + PROBE)
        return value

    def _fallbacks(self) -> int:
        return 0 if self.cache is None else self.cache.stats().fallbacks

    def _state(self) -> CircuitState:
        return CircuitState.CLOSED if self.breaker is None else self.breaker.state

    async def sample(self, proxy: FaultProxy, start: float) -> CallSample:
        state_before, before, fallbacks = self._state(), proxy.stats(), self._fallbacks()
        began = time.monotonic()
        outcome: Outcome = "failed"
        try:
            value = await self.read()
        except CircuitBreakerOpenError:
            outcome = "rejected"
        except RedisError:
            outcome = "failed"
        else:
            if value == VALUE:
                outcome = "fallback" if self._fallbacks() > fallbacks else "ok"
        latency = time.monotonic() - began
        connections, moved = _moved(before, proxy.stats())
        return CallSample(
            began - start, latency, outcome, state_before, self._state(), connections, moved
        )


# The sketch's defects, on a fake clock.


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class _Boom(Exception):  # noqa: N818 (a stand-in for a failed dependency call)
    pass


def _fail() -> None:
    raise _Boom


def _succeed() -> None:
    return None


def _call(breaker: CircuitBreaker | SketchedCircuitBreaker, fn: Callable[[], None]) -> bool:
    """True when the breaker let the call through."""
    try:
        breaker.call(fn)
    except CircuitBreakerOpenError:
        return False
    except _Boom:
        pass
    return True


def trips_on_spread_failures(
    breaker: CircuitBreaker | SketchedCircuitBreaker, clock: FakeClock, calls: int = 300
) -> int:
    """Times `breaker` opens when every 3rd of `calls` fails; after each trip the clock
    passes the open timeout and a success closes it again (trial calls included)."""
    trips = 0
    for index in range(calls):
        failing = index % 3 == 2
        was_open = breaker.state is CircuitState.OPEN
        if was_open:
            clock.now += 3600.0
        _call(breaker, _fail if failing else _succeed)
        if not was_open and breaker.state is CircuitState.OPEN:
            trips += 1
    return trips


def successes_to_close(
    breaker: CircuitBreaker | SketchedCircuitBreaker,
    clock: FakeClock,
    history: int = 20,
    failure_threshold: int = 5,
) -> int:
    """Successful trial calls `breaker` needs in half-open to close, after `history`
    successes while closed and `failure_threshold` failures that open it."""
    for _ in range(history):
        _call(breaker, _succeed)
    for _ in range(failure_threshold):
        _call(breaker, _fail)
    opened_by_failures = breaker.state
    if opened_by_failures is not CircuitState.OPEN:
        raise RuntimeError("the failures did not open the breaker")
    clock.now += 3600.0
    successes = 0
    for _ in range(100):
        if _call(breaker, _succeed):
            successes += 1
        if breaker.state is CircuitState.CLOSED:
            return successes
    raise RuntimeError("the breaker never closed")


@dataclass
class _Gate:
    entered: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self) -> None:
        self.entered += 1
        await self.release.wait()


async def concurrent_trials(
    breaker: CircuitBreaker | SketchedCircuitBreaker,
    clock: FakeClock,
    callers: int = 10,
    failure_threshold: int = 5,
) -> int:
    """Trial calls admitted at once when `callers` arrive together after the open timeout."""
    for _ in range(failure_threshold):
        _call(breaker, _fail)
    clock.now += 3600.0
    gate = _Gate()

    async def caller() -> None:
        with contextlib.suppress(CircuitBreakerOpenError):
            await breaker.call_async(gate)

    tasks = [asyncio.create_task(caller()) for _ in range(callers)]
    for _ in range(10):
        await asyncio.sleep(0)
    admitted = gate.entered
    gate.release.set()
    await asyncio.gather(*tasks)
    return admitted


def breakers(
    half_open_max_calls: int = 1, success_threshold: int = 3, failure_threshold: int = 5
) -> dict[str, tuple[CircuitBreaker | SketchedCircuitBreaker, FakeClock]]:
    """A fresh recommended breaker and sketch with the same settings, each on its clock."""
    made: dict[str, tuple[CircuitBreaker | SketchedCircuitBreaker, FakeClock]] = {}
    clock = FakeClock()
    made["recommended"] = (
        CircuitBreaker(
            "dependency",
            BreakerConfig(
                failure_threshold=failure_threshold,
                success_threshold=success_threshold,
                half_open_max_calls=half_open_max_calls,
                timeout_s=60.0,
            ),
            clock=clock,
        ),
        clock,
    )
    clock = FakeClock()
    made["sketch"] = (
        SketchedCircuitBreaker(
            "dependency",
            failure_threshold=failure_threshold,
            success_threshold=success_threshold,
            half_open_max_calls=half_open_max_calls,
            timeout_s=60.0,
            clock=clock,
        ),
        clock,
    )
    return made


async def outage_runs(
    proxy: FaultProxy, prefix: str, config: OutageConfig
) -> dict[Subject, OutageRun]:
    """The subjects one after another through the same proxy."""
    runs: dict[Subject, OutageRun] = {}
    for subject in SUBJECTS:
        runs[subject] = await outage_run(subject, proxy, prefix, config)
    return runs


REQUIRED_KINDS: tuple[tuple[CircuitState, CircuitState], ...] = (
    (CircuitState.CLOSED, CircuitState.OPEN),
    (CircuitState.OPEN, CircuitState.HALF_OPEN),
    (CircuitState.HALF_OPEN, CircuitState.CLOSED),
)


def missing_transitions(run: OutageRun) -> int:
    """Transitions the recommended breaker's metrics count but its listener did not see
    (or the reverse), plus each of closed->open, open->half-open, half-open->closed the run
    went through but the listener never reported."""
    if run.metrics_transitions is None:
        raise ValueError(f"{run.subject} reports no transitions")
    seen = {(change.old, change.new) for change in run.transitions}
    return abs(run.metrics_transitions - len(run.transitions)) + sum(
        1 for kind in REQUIRED_KINDS if kind not in seen
    )
