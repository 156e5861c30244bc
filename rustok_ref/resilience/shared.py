"""Optional: share a breaker's trips across processes through Redis. Off unless you wrap a
breaker in `SharedBreakerState`.

The trade-off. Users of every anchor ask for shared state (resilience4j #419, #1284, #1721;
Polly #215, #1449; pybreaker ships `CircuitRedisStorage`), and their maintainers decline
or warn: a Redis round trip per call costs more than the call it guards, and one process
with a bad network path can open the breaker for the whole fleet. This module takes the
cheap half of the idea:

- what is shared is the *trip*, not the counts: each process counts its own calls, and
  only its transitions to open, forced_open, disabled and closed are published (one
  pipelined SET/DEL + PUBLISH per transition, nothing per call); half-open stays local, so
  every process probes the dependency itself before trusting it again;
- the others adopt a published open for the time it has left (the key expires with it), an
  operator's forced_open or disabled everywhere, and a close (someone's trials succeeded);
  a process that starts later reads the key and starts open if the fleet is open;
- the local breaker stays authoritative: when Redis cannot be reached, publishing and
  listening log a warning and retry, and calls are decided locally as before. Do not share
  a breaker's state through the very Redis it protects and expect sharing to work during
  that outage: the trip stays local until Redis is back.

Still true: one process's local trouble can open the breaker fleet-wide for `timeout_s`.
Every key and channel is under the run's prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from types import TracebackType
from typing import Any, Self

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rustok_ref.resilience.breaker import (
    BreakerListener,
    CircuitBreaker,
    CircuitState,
    StateChange,
)

__all__ = ["SharedBreakerState"]

logger = logging.getLogger(__name__)

_SHARED = frozenset(
    {CircuitState.OPEN, CircuitState.FORCED_OPEN, CircuitState.DISABLED, CircuitState.CLOSED}
)


class _Forwarder(BreakerListener):
    """Hands the breaker's own transitions, from any thread, to the publishing task."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[StateChange]) -> None:
        self._loop = loop
        self._queue = queue

    def state_change(self, breaker: CircuitBreaker, change: StateChange) -> None:
        if change.reason != "remote" and change.new in _SHARED:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                self._loop.call_soon_threadsafe(self._queue.put_nowait, change)


class SharedBreakerState:
    """`async with SharedBreakerState(breaker, redis, prefix=...) as shared:` publishes the
    breaker's transitions and adopts the other processes' until the block ends.
    `await shared.ready.wait()` returns once it has subscribed and read the current state."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        redis: aioredis.Redis,
        *,
        prefix: str,
        reconnect_delay_s: float = 1.0,
    ) -> None:
        self.breaker = breaker
        self.key = f"{prefix}breaker:{breaker.name}"
        self.channel = f"{self.key}:changes"
        self.instance_id = uuid.uuid4().hex
        self.ready = asyncio.Event()
        self._redis = redis
        self._reconnect_delay_s = reconnect_delay_s
        self._queue: asyncio.Queue[StateChange] = asyncio.Queue()
        self._forwarder: _Forwarder | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        self._forwarder = _Forwarder(asyncio.get_running_loop(), self._queue)
        self.breaker.add_listener(self._forwarder)
        self._tasks = [
            asyncio.create_task(self._publish_changes(), name=f"{self.key}:publish"),
            asyncio.create_task(self._follow_changes(), name=f"{self.key}:follow"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._forwarder is not None:
            self.breaker.remove_listener(self._forwarder)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # Publishing this process's transitions.

    async def _publish_changes(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                await self._publish(change)
            except (RedisError, OSError) as error:
                logger.warning(
                    "breaker %r: could not share %s: %s", self.breaker.name, change.new, error
                )

    async def _publish(self, change: StateChange) -> None:
        message = json.dumps(
            {"origin": self.instance_id, "state": change.new.value, "open_for_s": change.open_for_s}
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            if change.new is CircuitState.CLOSED:
                pipe.delete(self.key)
            elif change.open_for_s is not None:  # open: the key lasts as long as the trip
                pipe.set(self.key, message, px=max(1, round(change.open_for_s * 1000)))
            else:
                pipe.set(self.key, message)
            pipe.publish(self.channel, message)
            await pipe.execute()

    # Following the other processes' transitions.

    async def _follow_changes(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                await self._adopt_current()  # after subscribing, so nothing falls between
                self.ready.set()
                async for message in pubsub.listen():
                    self._adopt(json.loads(message["data"]))
            except (RedisError, OSError) as error:
                logger.warning(
                    "breaker %r: lost the shared state (%s); retrying in %s s",
                    self.breaker.name,
                    error,
                    self._reconnect_delay_s,
                )
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(self._reconnect_delay_s)

    async def _adopt_current(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self.key)
            pipe.pttl(self.key)
            raw, ttl_ms = await pipe.execute()
        if raw is not None:
            message = json.loads(raw)
            if ttl_ms > 0:
                message["open_for_s"] = ttl_ms / 1000
            self._adopt(message)

    def _adopt(self, message: dict[str, Any]) -> None:
        if message.get("origin") == self.instance_id:
            return
        self.breaker.adopt(CircuitState(message["state"]), open_for_s=message.get("open_for_s"))
