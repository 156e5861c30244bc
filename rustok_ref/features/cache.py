"""The flag cache: each tenant's flags held in moka for a TTL on an injected clock, and
forgotten on every instance when they change, over the run's Redis channel
`{prefix}feature.cache.invalidate` (mirroring the tenant cache's invalidation).

The publisher goes through a `ResilientRedisCache` (its own prefix may share the tenant
cache's breaker), so a Redis outage never fails a flag change, and evaluations never touch
Redis at all: during an outage an instance serves what it cached, then reloads from the
database after the TTL. A listener that loses its subscription may miss messages, so on every
re-subscription it drops the whole cache, as the tenant listener does.

The cache and the listener are the generic ones of `resilience.invalidation`, applied to
messages that are tenant ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final
from uuid import UUID

import redis.asyncio as aioredis

from rustok_ref.features.store import TenantFlags
from rustok_ref.resilience.cache import ResilientRedisCache
from rustok_ref.resilience.invalidation import InvalidatedCache, InvalidationListener

__all__ = ["CHANNEL", "FlagCache", "FlagInvalidationListener", "FlagInvalidationPublisher"]

CHANNEL: Final = "feature.cache.invalidate"


class FlagCache(InvalidatedCache[UUID, TenantFlags]):
    """`await cache.get(tenant, loader)`: the tenant's flags, loaded at most once per `ttl_s`
    (on `clock`) unless invalidated (`InvalidatedCache`'s rules)."""

    def __init__(
        self,
        *,
        ttl_s: float = 30.0,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl_s=ttl_s, capacity=capacity, clock=clock)


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


class FlagInvalidationListener(InvalidationListener):
    """`async with FlagInvalidationListener(redis, prefix, cache): ...` applies every message
    (a tenant id) to `cache` and drops all of it on every re-subscription (the generic
    listener's rules)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        cache: FlagCache,
        *,
        reconnect_delay: float = 1.0,
    ) -> None:
        def apply(payload: bytes) -> bool:
            try:
                tenant_id = UUID(payload.decode())
            except (ValueError, UnicodeDecodeError):
                return False
            cache.invalidate(tenant_id)
            return True

        super().__init__(
            redis,
            prefix + CHANNEL,
            apply=apply,
            drop_all=cache.invalidate_all,
            reconnect_delay=reconnect_delay,
        )
