"""The API's in-process dispatcher and the burst that loads it (POST /admin/events/burst).

A lab scenario measures backpressure through the API: it asks for `count` events at once and
reads how many the dispatcher accepted, refused or shed, and how deep its mailbox got. The
dispatcher is the real one (`events/dispatcher.py`), with the capacity and overflow policy
of the settings, and one subscriber doing a little CPU work per event, so its queue drains
at a finite rate while the burst fills it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Final

from rustok_ref.config import Settings
from rustok_ref.errors import BackpressuredError
from rustok_ref.events.dispatcher import Dispatcher, Policy, SubscriberOptions

__all__ = ["BURST_TOPIC", "BurstResult", "burst", "burst_dispatcher"]

BURST_TOPIC: Final = "lab.burst"
_SUBSCRIBER: Final = "lab-burst-worker"
_DROPPING: Final = frozenset({Policy.DROP_OLDEST, Policy.DROP_NEWEST})


@dataclass(frozen=True, slots=True)
class BurstResult:
    """What one burst did: `accepted + rejected == count`; `dropped` of the accepted were
    shed by a lossy mailbox; `depth` is the queue right after the burst."""

    accepted: int
    rejected: int
    dropped: int
    depth: int


async def _digest(item: int) -> None:
    """The subscriber's small piece of work: hash the event, then let others run."""
    hashlib.sha256(item.to_bytes(8, "big")).digest()
    await asyncio.sleep(0)


def burst_dispatcher(settings: Settings) -> Dispatcher[int]:
    """A dispatcher (not started) with the burst's subscriber, sized by the settings."""
    policy = Policy(settings.dispatcher_policy)
    dispatcher: Dispatcher[int] = Dispatcher()
    dispatcher.subscribe(
        _SUBSCRIBER,
        _digest,
        topics=[BURST_TOPIC],
        options=SubscriberOptions(
            capacity=settings.dispatcher_capacity, policy=policy, lossy=policy in _DROPPING
        ),
    )
    return dispatcher


async def burst(dispatcher: Dispatcher[int], count: int) -> BurstResult:
    """Submit `count` events as fast as the policy lets; BackpressuredError only when the
    dispatcher took none of them (the caller should back off as a whole)."""
    dropped_before = dispatcher.metrics().dropped
    rejected = 0
    last_refusal: BackpressuredError | None = None
    for item in range(count):
        try:
            await dispatcher.submit(BURST_TOPIC, item)
        except BackpressuredError as refusal:
            rejected += 1
            last_refusal = refusal
    if rejected == count and last_refusal is not None:
        raise last_refusal
    return BurstResult(
        accepted=count - rejected,
        rejected=rejected,
        dropped=dispatcher.metrics().dropped - dropped_before,
        depth=dispatcher.depth,
    )
