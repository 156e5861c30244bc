"""The dispatcher's books balance under any interleaving of publish, handle, fail and close.

Two subscribers share topic `a`: a durable one (block or reject) that also takes `b`, and a
lossy one (drop oldest or newest); topic `c` has none. Handlers hold every call until a rule
settles it, so each rule is one step the model can account for. After every step: for each
subscriber `accepted == handled + failed + depth + in_flight + dropped + abandoned`, depth
never exceeds capacity, only the lossy subscriber drops, every pressure change matched its
depth (with hysteresis), and no item was acknowledged twice or without being accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rustok_ref.errors import BackpressuredError
from rustok_ref.events.dispatcher import (
    Dispatcher,
    DispatcherConfig,
    Outcome,
    Policy,
    Pressure,
    SubscriberOptions,
)

TOPICS = {"durable": frozenset({"a", "b"}), "lossy": frozenset({"a"})}


class HandlerFailedError(Exception):
    """What a failing handler raises."""


async def _yield(_: float) -> None:
    await asyncio.sleep(0)


async def _settle() -> None:
    """Let every ready task run until the loop is quiet (handlers wait on the model)."""
    for _ in range(60):
        await asyncio.sleep(0)


class DispatcherMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.options: dict[str, SubscriberOptions] = {}
        self.auto = False  # handlers succeed at once (while draining or closing)
        self.next_item = 0

    def _build(self) -> None:
        """A fresh dispatcher (at the start, and after each close) and a fresh model."""
        self.dispatcher: Dispatcher[int] = Dispatcher(
            DispatcherConfig(backoff_base_s=0.0), on_pressure=self._pressure, sleep=_yield
        )
        for name, options in self.options.items():
            self.dispatcher.subscribe(
                name, self._handler(name), topics=TOPICS[name], options=options
            )
        self.run(self._start())
        self.pending: list[tuple[str, int, asyncio.Future[bool]]] = []
        self.accepted: dict[int, str] = {}  # item -> topic
        self.unrouted = 0
        self.blocked: list[tuple[int, str, asyncio.Task[None]]] = []
        # what the callbacks saw, checked by the invariants (a callback's own failure would
        # only be logged by the dispatcher)
        self.acks: list[tuple[int, Outcome]] = []
        self.changes: list[tuple[str, Pressure, int]] = []
        self.state = {"durable": Pressure.NORMAL, "lossy": Pressure.NORMAL}

    async def _start(self) -> None:
        self.dispatcher.start()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    def _handler(self, name: str) -> Callable[[int], Awaitable[None]]:
        async def handle(item: int) -> None:
            if self.auto:
                return
            future: asyncio.Future[bool] = self.loop.create_future()
            self.pending.append((name, item, future))
            if not await future:
                raise HandlerFailedError(item)

        return handle

    def _pressure(self, name: str, state: Pressure) -> None:
        self.changes.append((name, state, self.dispatcher.metrics().subscribers[name].depth))

    def _ack(self, item: int) -> Callable[[Outcome], None]:
        return lambda outcome: self.acks.append((item, outcome))

    @property
    def acked(self) -> set[int]:
        return {item for item, outcome in self.acks if outcome is not Outcome.UNROUTED}

    @initialize(
        durable=st.sampled_from([Policy.BLOCK, Policy.REJECT]),
        lossy=st.sampled_from([Policy.DROP_OLDEST, Policy.DROP_NEWEST]),
        capacity=st.integers(1, 8),
        watermarks=st.sampled_from([(0.7, 0.9), (0.25, 0.75), (0.5, 1.0)]),
        concurrency=st.integers(1, 3),
        max_attempts=st.integers(1, 3),
    )
    def subscribe(
        self,
        durable: Policy,
        lossy: Policy,
        capacity: int,
        watermarks: tuple[float, float],
        concurrency: int,
        max_attempts: int,
    ) -> None:
        low, high = watermarks
        common = {
            "capacity": capacity,
            "low_watermark": low,
            "high_watermark": high,
            "max_attempts": max_attempts,
        }
        self.options = {
            "durable": SubscriberOptions(policy=durable, concurrency=concurrency, **common),
            "lossy": SubscriberOptions(policy=lossy, lossy=True, **common),
        }
        self._build()

    def _full(self, name: str) -> bool:
        return self.dispatcher.metrics().subscribers[name].depth >= self.options[name].capacity

    @rule(topics=st.lists(st.sampled_from("aaabc"), min_size=1, max_size=10))
    def publish(self, topics: list[str]) -> None:
        """Publish one item per topic, in turn; a blocked publisher stays blocked."""
        for topic in topics:
            item, self.next_item = self.next_item, self.next_item + 1
            durable_full = topic in TOPICS["durable"] and self._full("durable")
            task = self.loop.create_task(self.dispatcher.submit(topic, item, self._ack(item)))
            self.run(_settle())
            if not task.done():
                assert durable_full
                assert self.options["durable"].policy is Policy.BLOCK
                self.blocked.append((item, topic, task))
            elif isinstance(task.exception(), BackpressuredError):
                assert durable_full
                assert self.options["durable"].policy is Policy.REJECT
            else:
                assert task.exception() is None
                self._accept(item, topic)

    def _accept(self, item: int, topic: str) -> None:
        if topic == "c":
            self.unrouted += 1
            assert (item, Outcome.UNROUTED) in self.acks
        else:
            self.accepted[item] = topic

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(min_value=0), succeed=st.booleans())
    def finish_a_handler(self, pick: int, succeed: bool) -> None:
        _, _, future = self.pending.pop(pick % len(self.pending))
        future.set_result(succeed)
        self.run(_settle())
        self._unblocked()

    def _unblocked(self, closing: bool = False) -> None:
        still = []
        for item, topic, task in self.blocked:
            if not task.done():
                still.append((item, topic, task))
            elif task.exception() is None:
                self._accept(item, topic)
            else:  # closing wakes blocked publishers with a refusal
                assert closing
                assert isinstance(task.exception(), BackpressuredError)
        self.blocked = still

    def _release_all(self) -> None:
        for _, _, future in self.pending:
            future.set_result(True)
        self.pending.clear()

    @rule()
    def drain(self) -> None:
        """Let every handler succeed until the queues are empty, then hold them again."""
        self.auto = True
        self._release_all()
        self.run(_settle())
        self.auto = False
        self._unblocked()
        assert not self.blocked
        assert self.dispatcher.metrics().depth == 0
        assert self.acked == set(self.accepted)  # everything accepted was settled

    @rule(drain=st.booleans())
    def close(self, drain: bool) -> None:
        """Close (draining or handing queued items back), check the books, start afresh."""
        self.auto = True
        self._release_all()
        abandoned = set(self.run(self.dispatcher.close(drain=drain)))
        self.run(_settle())
        self._unblocked(closing=True)
        assert not self.blocked
        if drain:
            assert not abandoned
        # every accepted item was settled once, or handed back un-acked
        assert abandoned.isdisjoint(self.acked)
        assert self.acked | abandoned == set(self.accepted)
        self.auto = False
        self.acks_are_once_each()
        self.pressure_changes_match_depth()
        self._build()

    @invariant()
    def books_balance(self) -> None:
        if not self.options:
            return
        metrics = self.dispatcher.metrics()
        for name, m in metrics.subscribers.items():
            assert m.accepted == (
                m.handled + m.failed + m.depth + m.in_flight + m.dropped + m.abandoned
            )
            assert m.depth <= m.capacity
            assert m.peak_depth <= m.capacity
            assert m.in_flight <= m.concurrency
            assert m.accepted == sum(topic in TOPICS[name] for topic in self.accepted.values())
        assert metrics.subscribers["durable"].dropped == 0
        assert metrics.subscribers["lossy"].rejected == 0
        assert metrics.unrouted == self.unrouted
        assert len(self.dispatcher.dead_letters) == metrics.failed

    @invariant()
    def acks_are_once_each(self) -> None:
        if not self.options:
            return
        items = [item for item, _ in self.acks]
        assert len(items) == len(set(items)), "an item was acknowledged twice"
        assert self.acked <= set(self.accepted)

    @invariant()
    def pressure_changes_match_depth(self) -> None:
        """Each change: Critical at or above high, Normal below low, Warning only from Normal
        and inside the band (Critical is released below low, never to Warning)."""
        for name, state, depth in self.changes:
            options, previous = self.options[name], self.state[name]
            assert state is not previous
            if state is Pressure.CRITICAL:
                assert depth >= options.high_depth
            elif state is Pressure.NORMAL:
                assert depth < options.low_depth
            else:
                assert previous is Pressure.NORMAL
                assert options.low_depth <= depth < options.high_depth
            self.state[name] = state
        self.changes.clear()

    @invariant()
    def pressure_matches_depth(self) -> None:
        if not self.options:
            return
        subscribers = self.dispatcher.metrics().subscribers
        for name, options in self.options.items():
            depth, pressure = subscribers[name].depth, subscribers[name].pressure
            assert pressure is self.state[name]
            if depth >= options.high_depth:
                assert pressure is Pressure.CRITICAL
            elif depth < options.low_depth:
                assert pressure is Pressure.NORMAL
            else:
                assert pressure is not Pressure.NORMAL
        # the lossy subscriber never pushes back
        assert self.dispatcher.pressure is self.state["durable"]

    def teardown(self) -> None:
        if self.options:
            self.auto = True
            self._release_all()
            self.run(self.dispatcher.close(drain=False))
            self.run(_settle())
            for _, _, task in self.blocked:
                task.exception()
        self.loop.close()


TestDispatcherStateMachine = DispatcherMachine.TestCase
