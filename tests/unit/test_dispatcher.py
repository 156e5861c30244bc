"""The dispatcher's policies, watermarks, concurrency, retries, shutdown and sampler.

Handlers wait on futures the test resolves, and the clock and sleep are injected, so every
test is a sequence of steps: none waits on real time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pydantic
import pytest

from rustok_ref.errors import BackpressuredError
from rustok_ref.events.dispatcher import (
    DeadLetter,
    Dispatcher,
    DispatcherConfig,
    Outcome,
    Policy,
    Pressure,
    SubscriberOptions,
)


async def settle() -> None:
    """Run every ready task until the loop is quiet."""
    for _ in range(60):
        await asyncio.sleep(0)


class Gate:
    """A handler that holds each call until `release()`; it counts concurrent calls."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[Any, asyncio.Future[None]]] = deque()
        self.started: list[Any] = []
        self.running = 0
        self.peak = 0

    async def __call__(self, item: Any) -> None:
        self.started.append(item)
        self.running += 1
        self.peak = max(self.peak, self.running)
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        try:
            await future
        finally:
            self.running -= 1

    async def release(self, count: int = 1) -> None:
        for _ in range(count):
            _, future = self.waiting.popleft()
            future.set_result(None)
            await settle()


class Recorder:
    """A handler that records what it handled."""

    def __init__(self) -> None:
        self.handled: list[Any] = []

    async def __call__(self, item: Any) -> None:
        self.handled.append(item)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def acks() -> tuple[dict[Any, Outcome], Any]:
    seen: dict[Any, Outcome] = {}

    def for_item(item: Any) -> Any:
        def ack(outcome: Outcome) -> None:
            assert item not in seen
            seen[item] = outcome

        return ack

    return seen, for_item


def balanced(dispatcher: Dispatcher[Any]) -> bool:
    return all(
        m.accepted == m.handled + m.failed + m.depth + m.in_flight + m.dropped + m.abandoned
        for m in dispatcher.metrics().subscribers.values()
    )


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"policy": Policy.DROP_OLDEST},  # dropping needs lossy=True
        {"policy": Policy.DROP_NEWEST},
        {"policy": Policy.BLOCK, "lossy": True},  # and lossy needs a drop policy
        {"low_watermark": 0.9, "high_watermark": 0.9},
        {"capacity": 0},
        {"concurrency": 0},
        {"max_attempts": 0},
    ],
)
def test_inconsistent_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        SubscriberOptions(**options)


def test_watermark_depths_truncate_like_the_real_controller() -> None:
    options = SubscriberOptions(capacity=100)
    assert (options.low_depth, options.high_depth) == (70, 90)
    assert SubscriberOptions(capacity=1000, low_watermark=0.6, high_watermark=0.8).low_depth == 600
    assert (SubscriberOptions(capacity=1).low_depth, SubscriberOptions(capacity=1).high_depth) == (
        1,
        1,
    )


def test_a_subscriber_name_is_unique() -> None:
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe("s", Recorder())
    with pytest.raises(ValueError, match="already registered"):
        dispatcher.subscribe("s", Recorder())


# -- policies --------------------------------------------------------------------------------


async def test_block_waits_until_a_handler_makes_space() -> None:
    gate = Gate()
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe("s", gate, options=SubscriberOptions(capacity=2))
    dispatcher.start()
    for item in range(3):  # one in flight, two queued: full
        await dispatcher.submit("t", item)
    await settle()
    assert dispatcher.metrics().subscribers["s"].depth == 2

    blocked = asyncio.create_task(dispatcher.submit("t", 3))
    await settle()
    assert not blocked.done()

    await gate.release()  # item 0 done, item 1 taken: one slot free
    assert blocked.done()
    await blocked
    m = dispatcher.metrics().subscribers["s"]
    assert (m.accepted, m.handled, m.depth, m.in_flight, m.rejected) == (4, 1, 2, 1, 0)
    assert m.peak_depth == 2
    await gate.release(3)
    assert gate.started == [0, 1, 2, 3]
    await dispatcher.close()


async def test_reject_raises_backpressured_and_the_item_goes_nowhere() -> None:
    recorder = Recorder()
    dispatcher: Dispatcher[int] = Dispatcher(DispatcherConfig(retry_after_s=2))
    dispatcher.subscribe("s", recorder, options=SubscriberOptions(capacity=3, policy="reject"))
    seen, ack = acks()
    for item in range(3):  # not started: the queue only fills
        await dispatcher.submit("t", item, ack(item))

    with pytest.raises(BackpressuredError) as refused:
        await dispatcher.submit("t", 3, ack(3))
    assert refused.value.retry_after == 2
    assert refused.value.status == 503
    assert refused.value.extra == {"subscriber": "s", "capacity": 3}
    metrics = dispatcher.metrics()
    assert (metrics.rejected, metrics.accepted, metrics.depth) == (1, 3, 3)
    assert metrics.subscribers["s"].rejected == 1

    await dispatcher.close()  # drains
    assert recorder.handled == [0, 1, 2]
    assert seen == dict.fromkeys(range(3), Outcome.HANDLED)  # item 3 was never acked
    assert balanced(dispatcher)


async def test_reject_is_all_or_nothing_across_subscribers() -> None:
    first, second = Recorder(), Recorder()
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe("roomy", first, options=SubscriberOptions(capacity=5, policy="reject"))
    dispatcher.subscribe("tight", second, options=SubscriberOptions(capacity=1, policy="reject"))
    await dispatcher.submit("t", 0)
    with pytest.raises(BackpressuredError):
        await dispatcher.submit("t", 1)
    subscribers = dispatcher.metrics().subscribers
    assert subscribers["roomy"].accepted == subscribers["tight"].accepted == 1
    assert (subscribers["roomy"].rejected, subscribers["tight"].rejected) == (0, 1)
    await dispatcher.close()


@pytest.mark.parametrize(
    ("policy", "kept", "dropped"),
    [(Policy.DROP_OLDEST, [2, 3, 4], [0, 1]), (Policy.DROP_NEWEST, [0, 1, 2], [3, 4])],
)
async def test_a_lossy_subscriber_drops_and_counts_every_drop(
    policy: Policy, kept: list[int], dropped: list[int]
) -> None:
    recorder = Recorder()
    dispatcher: Dispatcher[int] = Dispatcher()
    options = SubscriberOptions(capacity=3, policy=policy, lossy=True)
    dispatcher.subscribe("live", recorder, options=options)
    seen, ack = acks()
    for item in range(5):  # never blocks, never raises
        await dispatcher.submit("t", item, ack(item))
    assert seen == dict.fromkeys(dropped, Outcome.DROPPED)

    await dispatcher.close()
    assert recorder.handled == kept
    m = dispatcher.metrics().subscribers["live"]
    assert (m.accepted, m.dropped, m.handled, m.rejected) == (5, 2, 3, 0)
    assert m.peak_depth == 3
    assert balanced(dispatcher)


async def test_concurrent_publishers_never_overshoot_capacity() -> None:
    """The Rust controller's check-then-increment lets concurrent callers pass the limit
    (reference §4.1); here check and enqueue happen with no await between them."""
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe("s", Gate(), options=SubscriberOptions(capacity=10, policy="reject"))
    results = await asyncio.gather(
        *(dispatcher.submit("t", n) for n in range(50)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BackpressuredError)]
    m = dispatcher.metrics().subscribers["s"]
    assert (m.accepted, m.rejected, len(refused), m.peak_depth) == (10, 40, 40, 10)
    await dispatcher.close(drain=False)


async def test_an_item_for_no_subscriber_is_acked_as_unrouted() -> None:
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe("orders", Recorder(), topics=["order.placed"])
    seen, ack = acks()
    await dispatcher.submit("tenant.created", 1, ack(1))
    assert seen == {1: Outcome.UNROUTED}
    assert dispatcher.metrics().unrouted == 1
    assert dispatcher.metrics().accepted == 0


async def test_fan_out_acks_once_after_every_subscriber() -> None:
    slow, fast = Gate(), Recorder()
    dispatcher: Dispatcher[str] = Dispatcher()
    dispatcher.subscribe("projection", slow, topics=["order.placed"])
    dispatcher.subscribe("audit", fast)  # every topic
    seen, ack = acks()
    async with dispatcher:
        await dispatcher.submit("order.placed", "o1", ack("o1"))
        await settle()
        assert fast.handled == ["o1"]
        assert seen == {}  # the projection is still working
        await slow.release()
        assert seen == {"o1": Outcome.HANDLED}


# -- watermarks ------------------------------------------------------------------------------


async def test_watermarks_signal_pressure_and_release_it_with_hysteresis() -> None:
    changes: list[tuple[str, Pressure]] = []
    gate = Gate()
    dispatcher: Dispatcher[int] = Dispatcher(on_pressure=lambda s, p: changes.append((s, p)))
    dispatcher.subscribe("s", gate, options=SubscriberOptions(capacity=10))  # low 7, high 9
    for item in range(6):
        await dispatcher.submit("t", item)
    assert dispatcher.pressure is Pressure.NORMAL
    await dispatcher.submit("t", 6)
    assert dispatcher.pressure is Pressure.WARNING
    for item in (7, 8):
        await dispatcher.submit("t", item)
    assert dispatcher.pressure is Pressure.CRITICAL
    relieved = asyncio.create_task(dispatcher.wait_relieved())

    dispatcher.start()  # the worker takes item 0: depth 8
    await settle()
    await gate.release()  # depth 7: still Critical, inside the band
    assert dispatcher.metrics().subscribers["s"].depth == 7
    assert dispatcher.pressure is Pressure.CRITICAL
    assert not relieved.done()

    await gate.release()  # depth 6: below low, released
    assert dispatcher.pressure is Pressure.NORMAL
    assert relieved.done()
    assert changes == [("s", Pressure.WARNING), ("s", Pressure.CRITICAL), ("s", Pressure.NORMAL)]
    m = dispatcher.metrics().subscribers["s"]
    assert (m.warnings, m.criticals) == (1, 1)  # per crossing, not per event
    closing = asyncio.create_task(dispatcher.close(drain=False))
    await gate.release()  # the one in flight
    assert await closing == [3, 4, 5, 6, 7, 8]


async def test_a_full_lossy_subscriber_puts_no_pressure_on_the_publisher() -> None:
    dispatcher: Dispatcher[int] = Dispatcher()
    options = SubscriberOptions(capacity=2, policy="drop_oldest", lossy=True)
    dispatcher.subscribe("live", Recorder(), options=options)
    for item in range(5):
        await dispatcher.submit("t", item)
    assert dispatcher.metrics().subscribers["live"].pressure is Pressure.CRITICAL
    assert dispatcher.pressure is Pressure.NORMAL
    await asyncio.wait_for(dispatcher.wait_relieved(), timeout=10)  # liveness bound only


# -- handlers --------------------------------------------------------------------------------


async def test_each_subscriber_runs_at_most_its_concurrency() -> None:
    wide, narrow = Gate(), Gate()
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe("wide", wide, options=SubscriberOptions(concurrency=3))
    dispatcher.subscribe("narrow", narrow)  # concurrency 1
    async with dispatcher:
        for item in range(10):
            await dispatcher.submit("t", item)
        await settle()
        assert (wide.running, narrow.running) == (3, 1)
        while wide.waiting or narrow.waiting:
            for gate in (wide, narrow):
                if gate.waiting:
                    await gate.release()
        assert (wide.peak, narrow.peak) == (3, 1)
        assert narrow.started == list(range(10))  # one worker keeps order
    assert dispatcher.metrics().handled == 20


async def test_a_failing_handler_is_retried_then_dead_lettered_while_others_flow() -> None:
    delays: list[float] = []

    async def record_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    async def broken(item: int) -> None:
        raise RuntimeError(f"cannot handle {item}")

    letters: list[DeadLetter[int]] = []
    good = Recorder()
    config = DispatcherConfig(backoff_base_s=0.1, backoff_max_s=0.3)
    dispatcher: Dispatcher[int] = Dispatcher(
        config, on_dead_letter=letters.append, sleep=record_sleep
    )
    dispatcher.subscribe("broken", broken, options=SubscriberOptions(max_attempts=4))
    dispatcher.subscribe("good", good)
    seen, ack = acks()
    async with dispatcher:
        for item in range(3):
            await dispatcher.submit("t", item, ack(item))
    assert good.handled == [0, 1, 2]
    assert delays == [0.1, 0.2, 0.3] * 3  # doubling, capped
    assert seen == dict.fromkeys(range(3), Outcome.DEAD_LETTERED)
    assert [(d.subscriber, d.item, d.attempts) for d in letters] == [
        ("broken", item, 4) for item in range(3)
    ]
    assert str(letters[0].error) == "cannot handle 0"
    assert list(dispatcher.dead_letters) == letters
    broken_metrics = dispatcher.metrics().subscribers["broken"]
    assert (broken_metrics.failed, broken_metrics.retried, broken_metrics.handled) == (3, 9, 0)
    assert balanced(dispatcher)


async def test_a_flaky_handler_succeeds_on_retry() -> None:
    calls: list[int] = []

    async def flaky(item: int) -> None:
        calls.append(item)
        if len(calls) == 1:
            raise ConnectionError("transient")

    dispatcher: Dispatcher[int] = Dispatcher(sleep=lambda _: asyncio.sleep(0))
    dispatcher.subscribe("s", flaky)
    seen, ack = acks()
    async with dispatcher:
        await dispatcher.submit("t", 7, ack(7))
    assert calls == [7, 7]
    assert seen == {7: Outcome.HANDLED}
    m = dispatcher.metrics().subscribers["s"]
    assert (m.handled, m.retried, m.failed) == (1, 1, 0)


async def test_a_raising_callback_does_not_stop_the_worker(caplog: Any) -> None:
    def bad_ack(_: Outcome) -> None:
        raise ValueError("ack bug")

    recorder = Recorder()
    dispatcher: Dispatcher[int] = Dispatcher(on_pressure=lambda s, p: 1 / 0)
    dispatcher.subscribe("s", recorder, options=SubscriberOptions(capacity=1))
    async with dispatcher:
        for item in range(3):
            await dispatcher.submit("t", item, bad_ack)
    assert recorder.handled == [0, 1, 2]
    assert "ack callback failed" in caplog.text
    assert "pressure callback failed" in caplog.text


async def test_handler_latency_percentiles() -> None:
    clock = FakeClock()

    async def takes_item_ms(item: int) -> None:
        clock.now += item / 1000

    dispatcher: Dispatcher[int] = Dispatcher(clock=clock)
    dispatcher.subscribe("s", takes_item_ms)
    assert dispatcher.metrics().subscribers["s"].latency.p50 is None
    async with dispatcher:
        for item in range(1, 101):
            await dispatcher.submit("t", item)
    latency = dispatcher.metrics().subscribers["s"].latency
    assert latency.count == 100
    assert (latency.p50, latency.p95, latency.p99) == pytest.approx((0.050, 0.095, 0.099))


# -- shutdown --------------------------------------------------------------------------------


async def test_close_drains_queued_items_even_if_never_started() -> None:
    recorder = Recorder()
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe("s", recorder)
    for item in range(5):
        await dispatcher.submit("t", item)
    assert await dispatcher.close() == []
    assert recorder.handled == [0, 1, 2, 3, 4]
    with pytest.raises(BackpressuredError, match="closed"):
        await dispatcher.submit("t", 5)


async def test_close_without_drain_finishes_in_flight_and_hands_queued_items_back() -> None:
    gate, other = Gate(), Gate()
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe("s", gate, options=SubscriberOptions(capacity=2))
    dispatcher.subscribe("other", other, options=SubscriberOptions(capacity=5))
    seen, ack = acks()
    dispatcher.start()
    for item in range(3):  # "s": 0 in flight, 1 and 2 queued
        await dispatcher.submit("t", item, ack(item))
    blocked = asyncio.create_task(dispatcher.submit("t", 3, ack(3)))
    await settle()
    assert not blocked.done()

    closing = asyncio.create_task(dispatcher.close(drain=False))
    await settle()
    with pytest.raises(BackpressuredError):  # the blocked publisher is refused
        await blocked
    assert not closing.done()  # item 0 is still in flight for both
    await gate.release()
    await other.release()
    assert await closing == [1, 2]  # once each, though queued for two subscribers
    assert seen == {0: Outcome.HANDLED}  # abandoned items are never acked: redelivered
    for name in ("s", "other"):
        m = dispatcher.metrics().subscribers[name]
        assert (m.handled, m.abandoned, m.depth, m.in_flight) == (1, 2, 0, 0)
    assert balanced(dispatcher)


# -- depth over time -------------------------------------------------------------------------


async def test_the_sampler_records_depth_over_time() -> None:
    clock = FakeClock()
    ticks: asyncio.Queue[None] = asyncio.Queue()

    async def tick_sleep(seconds: float) -> None:  # advances only when the test ticks
        await ticks.get()
        clock.now += seconds

    async def tick() -> None:
        ticks.put_nowait(None)
        await settle()

    gate = Gate()
    config = DispatcherConfig(sample_interval_s=0.05, sample_capacity=3)
    dispatcher: Dispatcher[int] = Dispatcher(config, clock=clock, sleep=tick_sleep)
    dispatcher.subscribe("s", gate)
    dispatcher.start()
    await settle()
    for item in range(3):  # 0 in flight, 2 queued
        await dispatcher.submit("t", item)
    await tick()
    await gate.release()
    await tick()
    assert dispatcher.depth_samples == [(0.0, 0), (0.05, 2), pytest.approx((0.10, 1))]
    await tick()  # the oldest falls out of the bounded list
    assert [depth for _, depth in dispatcher.depth_samples] == [2, 1, 1]
    await gate.release(2)
    await dispatcher.close()
