"""Local caches kept honest across processes: `InvalidatedCache`, a moka cache whose entries
live for a TTL on an injected clock and never keep a load an invalidation overtook, and
`InvalidationListener`, which applies the messages of one Redis channel to such a cache.

The tenant, flag and product caches each publish "forget this" on a channel of their own
under the run's prefix after every committed change, and run one listener per process.
Pub/sub delivers at most once, so a listener that lost its connection may have missed
messages: each time its subscription is established again it drops the whole cache. It
notices that from the server's `subscribe` confirmation, which Redis sends for every
SUBSCRIBE: after redis-py re-subscribed on its own (it does so transparently when it
reconnects a dropped connection) as well as after the listener re-subscribed itself (when
redis-py gave up), so no reconnection goes unnoticed.

Written here because the libraries near it invalidate something else: Redis client-side
caching (RESP3 key tracking) keeps local copies of Redis keys, not of database rows, and
caching libraries such as aiocache or cashews invalidate their own keys, not a moka cache's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import redis.asyncio as aioredis
from moka_py import Moka
from redis.exceptions import RedisError

from rustok_ref.resilience.cache import MEMORY_SLACK

__all__ = ["InvalidatedCache", "InvalidationListener"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

logger = logging.getLogger(__name__)


class InvalidatedCache(Generic[K, V]):
    """`await cache.get(key, loader)`: the value, loaded (by `loader(key)`) at most once per
    `ttl_s` on `clock` unless invalidated. A load an invalidation overtook is served to its
    caller once and not stored: it may have read what the invalidation announced as gone.

    `hits` counts reads served from memory, `loads` the reads that went to the loader."""

    def __init__(
        self,
        *,
        ttl_s: float,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s}")
        self._ttl_s = ttl_s
        self._clock = clock
        self._store: Moka[K, tuple[V, float]] = Moka(capacity, ttl=ttl_s * MEMORY_SLACK)
        self._generation = 0  # bumped by every invalidation
        self.hits = 0
        self.loads = 0

    async def get(self, key: K, loader: Callable[[K], Awaitable[V]]) -> V:
        entry = self._store.get(key)
        if entry is not None and self._clock() < entry[1]:
            self.hits += 1
            return entry[0]
        generation = self._generation
        self.loads += 1
        value = await loader(key)
        if generation == self._generation:
            self._store.set(key, (value, self._clock() + self._ttl_s))
        return value

    def invalidate(self, key: K) -> None:
        self._generation += 1
        self._store.remove(key)

    def invalidate_all(self) -> None:
        self._generation += 1
        self._store.clear()

    def size(self) -> int:
        """Entries held now (for the size gauge)."""
        self._store.run_pending_tasks()
        return self._store.count()


class InvalidationListener:
    """`async with InvalidationListener(redis, channel, apply=..., drop_all=...): ...` hands
    every message on `channel` (a full channel name) to `apply`, which returns False for a
    malformed one, and calls `drop_all` on every re-subscription.

    After a failure redis-py gave up on, it subscribes again every `reconnect_delay` seconds.
    The counters say what it did; the `wait_*` helpers let a caller wait for them.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        channel: str,
        *,
        apply: Callable[[bytes], bool],
        drop_all: Callable[[], None],
        reconnect_delay: float = 1.0,
    ) -> None:
        self._redis = redis
        self.channel = channel
        self._apply = apply
        self._drop_all = drop_all
        self._reconnect_delay = reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.subscriptions = 0  # subscribe confirmations; each after the first dropped the cache
        self.messages = 0  # messages applied
        self.malformed = 0  # messages ignored
        self.failures = 0  # connection failures redis-py gave up on

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("this listener is already running")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_for(self, *, subscriptions: int = 0, messages: int = 0) -> None:
        """Return once the counters reached these values."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.subscriptions >= subscriptions and self.messages >= messages
            )

    async def wait_subscribed(self, count: int = 1) -> None:
        """Return once the subscription was confirmed `count` times."""
        await self.wait_for(subscriptions=count)

    async def wait_messages(self, count: int) -> None:
        """Return once `count` messages were applied."""
        await self.wait_for(messages=count)

    async def _run(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        await self._handle(message)
            except RedisError as exc:
                self.failures += 1
                logger.warning("listener on %s lost Redis (%s); retrying", self.channel, exc)
            await asyncio.sleep(self._reconnect_delay)

    async def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self.subscriptions += 1
            if self.subscriptions > 1:
                # Messages sent while the connection was down are lost: forget everything.
                self._drop_all()
        elif message["type"] == "message":
            data = message["data"]
            if self._apply(data.encode() if isinstance(data, str) else data):
                self.messages += 1
            else:
                self.malformed += 1
                logger.warning("ignored a malformed message on %s: %r", self.channel, data)
        async with self._changed:
            self._changed.notify_all()
