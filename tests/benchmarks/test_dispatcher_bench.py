"""What the dispatcher's policy, watermarks, metrics and handler call cost per item: items
through a `Dispatcher` with a no-op handler against the same items through a bare
`asyncio.Queue` producer/consumer pair of the same capacity (issue 4 aims at >= 0.25x its
throughput).

Both sides run in the one loop, one producer and one consumer, and a call returns when the
consumer has taken the last item: the dispatcher's ack of that item, the queue's sentinel
future. The items are already validated (validation has its own benchmark).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from rustok_ref.events.dispatcher import Dispatcher, SubscriberOptions
from rustok_ref.lab.benchrecord import Target

ITEMS = 2_000
CAPACITY = 500  # smaller than ITEMS, so the producer waits for space on both sides
EVENTS = [
    {
        "id": str(uuid.uuid4()),
        "event_type": "order.placed",
        "tenant_id": str(uuid.uuid4()),
        "payload": {"order_id": n, "total": 1999},
    }
    for n in range(ITEMS)
]


async def no_op(_: Any) -> None:
    return None


@pytest.fixture
async def through_dispatcher() -> AsyncIterator[Callable[[], Awaitable[None]]]:
    dispatcher: Dispatcher[dict[str, Any]] = Dispatcher()
    dispatcher.subscribe("projection", no_op, options=SubscriberOptions(capacity=CAPACITY))
    loop = asyncio.get_running_loop()

    async def run() -> None:
        done: asyncio.Future[object] = loop.create_future()
        last = len(EVENTS) - 1
        for n, event in enumerate(EVENTS):
            await dispatcher.submit("order.placed", event, done.set_result if n == last else None)
        await done

    async with dispatcher:
        yield run
    assert dispatcher.metrics().failed == 0


@pytest.fixture
async def through_queue() -> AsyncIterator[Callable[[], Awaitable[None]]]:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=CAPACITY)
    loop = asyncio.get_running_loop()

    async def consume() -> None:
        while True:
            item = await queue.get()
            if isinstance(item, asyncio.Future):
                item.set_result(None)

    async def run() -> None:
        done: asyncio.Future[None] = loop.create_future()
        for event in EVENTS:
            await queue.put(event)
        await queue.put(done)
        await done

    consumer = asyncio.create_task(consume())
    yield run
    consumer.cancel()


async def test_dispatcher_throughput_against_a_bare_queue(
    paired, through_dispatcher, through_queue
) -> None:
    await paired.async_(
        through_dispatcher,
        through_queue,
        labels=(f"Dispatcher, {ITEMS} items", f"asyncio.Queue pair, {ITEMS} items"),
        target=Target(measure="throughput", op=">=", value=0.25),
        rounds=15,
        iterations=5,
    )
