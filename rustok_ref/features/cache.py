"""The flag cache: each tenant's flags held in moka for a TTL on an injected clock, and
forgotten on every instance when they change, over the run's Redis channel
`{prefix}feature.cache.invalidate` (mirroring the tenant cache's invalidation).

The publisher goes through a `ResilientRedisCache` (its own prefix may share the tenant
cache's breaker), so a Redis outage never fails a flag change, and evaluations never touch
Redis at all: during an outage an instance serves what it cached, then reloads from the
database after the TTL. A listener that loses its subscription may miss messages, so on every
re-subscription it drops the whole cache, as the tenant listener does.

Why not `tenancy.invalidation`: its messages and listener are typed on tenant identifiers and
the tenant cache's API; flags are keyed by tenant id. Why not a library: as there, caching
libraries invalidate their own keys, not a moka cache's entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Self
from uuid import UUID

import redis.asyncio as aioredis
from moka_py import Moka
from redis.exceptions import RedisError

from rustok_ref.features.store import TenantFlags
from rustok_ref.resilience.cache import MEMORY_SLACK, ResilientRedisCache

__all__ = ["CHANNEL", "FlagCache", "FlagInvalidationListener", "FlagInvalidationPublisher"]

CHANNEL: Final = "feature.cache.invalidate"

logger = logging.getLogger(__name__)

FlagLoader = Callable[[UUID], Awaitable[TenantFlags]]


class FlagCache:
    """`await cache.get(tenant, loader)`: the tenant's flags, loaded at most once per `ttl_s`
    (on `clock`) unless invalidated. A load an invalidation overtook is served once and not
    stored."""

    def __init__(
        self,
        *,
        ttl_s: float = 30.0,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s}")
        self._ttl_s = ttl_s
        self._clock = clock
        self._store: Moka[UUID, tuple[TenantFlags, float]] = Moka(
            capacity, ttl=ttl_s * MEMORY_SLACK
        )
        self._generation = 0  # bumped by every invalidation
        self.hits = 0
        self.loads = 0

    async def get(self, tenant_id: UUID, loader: FlagLoader) -> TenantFlags:
        entry = self._store.get(tenant_id)
        if entry is not None and self._clock() < entry[1]:
            self.hits += 1
            return entry[0]
        generation = self._generation
        flags = await loader(tenant_id)
        self.loads += 1
        if generation == self._generation:
            self._store.set(tenant_id, (flags, self._clock() + self._ttl_s))
        return flags

    def invalidate(self, tenant_id: UUID) -> None:
        self._generation += 1
        self._store.remove(tenant_id)

    def invalidate_all(self) -> None:
        self._generation += 1
        self._store.clear()


class FlagInvalidationPublisher:
    """The store's `after_commit`: forgets the tenant here at once, then tells the other
    instances through `backend` (never raises; during an outage the message is queued)."""

    def __init__(self, backend: ResilientRedisCache, *, local: FlagCache | None = None) -> None:
        self._backend = backend
        self.channel = backend.prefix + CHANNEL
        self._local = local

    async def __call__(self, tenant_id: UUID) -> None:
        if self._local is not None:
            self._local.invalidate(tenant_id)
        await self._backend.publish(CHANNEL, str(tenant_id))


class FlagInvalidationListener:
    """`async with FlagInvalidationListener(redis, prefix, cache): ...` applies every message
    to `cache` and drops all of it on every re-subscription; after a failure redis-py gave up
    on, it subscribes again every `reconnect_delay` seconds."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        cache: FlagCache,
        *,
        reconnect_delay: float = 1.0,
    ) -> None:
        self._redis = redis
        self.channel = prefix + CHANNEL
        self._cache = cache
        self._reconnect_delay = reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.subscriptions = 0
        self.messages = 0
        self.malformed = 0

    async def __aenter__(self) -> Self:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_for(self, *, subscriptions: int = 0, messages: int = 0) -> None:
        """Return once the counters reached these values."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.subscriptions >= subscriptions and self.messages >= messages
            )

    async def _run(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        await self._handle(message)
            except RedisError as exc:
                logger.warning("flag invalidation listener lost Redis (%s); retrying", exc)
            await asyncio.sleep(self._reconnect_delay)

    async def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self.subscriptions += 1
            if self.subscriptions > 1:  # messages sent while disconnected are lost
                self._cache.invalidate_all()
        elif message["type"] == "message":
            data = message["data"]
            try:
                tenant_id = UUID(data.decode() if isinstance(data, bytes) else data)
            except (ValueError, UnicodeDecodeError):
                self.malformed += 1
                logger.warning("ignored a malformed flag invalidation: %r", message["data"])
            else:
                self._cache.invalidate(tenant_id)
                self.messages += 1
        async with self._changed:
            self._changed.notify_all()
