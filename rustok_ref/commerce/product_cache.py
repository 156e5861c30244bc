"""The product cache: what `GET /products/{id}` reads, held in memory per API process for
`product_cache_ttl_s`, so a hot product costs no database round trip (issue 10).

Entries are keyed by (tenant id, product id), so one tenant never reads another's. Every
product write the API makes calls `changed` after its commit: the entry goes here at once
(the writer reads its own write), and the other processes hear it on the run's channel
`{prefix}product.cache.invalidate`, published through the `ResilientRedisCache` so an outage
never fails the write (the message is queued and replayed). A load an invalidation overtook
is not stored, and a listener that re-subscribes drops everything (`resilience.invalidation`).

Stock also changes through checkouts (`inventory.reserve_stock` / `release_stock`, in the
saga's steps, possibly in another process): those do not invalidate, so the stock read here
may lag the database by up to the TTL after a checkout. The checkout's own guarded decrement
reads the row, never this cache, so the lag cannot oversell.

It lives in commerce, not the API, because the composition root builds it and its entries
are domain records; the handler turns them into the response exactly as before.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final
from uuid import UUID

import redis.asyncio as aioredis

from rustok_ref.commerce.products import ProductRecord
from rustok_ref.resilience.cache import ResilientRedisCache
from rustok_ref.resilience.invalidation import InvalidatedCache, InvalidationListener

__all__ = ["CHANNEL", "ProductCache"]

CHANNEL: Final = "product.cache.invalidate"


class ProductCache:
    """`await cache.get(tenant_id, product_id, load)`, `await cache.changed(...)` after a
    committed write, and `cache.listener(redis)` to run in each process."""

    def __init__(
        self,
        backend: ResilientRedisCache,
        *,
        ttl_s: float,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self.channel = backend.prefix + CHANNEL
        self._entries: InvalidatedCache[tuple[UUID, UUID], ProductRecord] = InvalidatedCache(
            ttl_s=ttl_s, capacity=capacity, clock=clock
        )

    @property
    def hits(self) -> int:
        return self._entries.hits

    @property
    def misses(self) -> int:
        """Reads that went to the database (a not-found is one, and is never cached)."""
        return self._entries.loads

    def size(self) -> int:
        return self._entries.size()

    async def get(
        self, tenant_id: UUID, product_id: UUID, load: Callable[[], Awaitable[ProductRecord]]
    ) -> ProductRecord:
        return await self._entries.get((tenant_id, product_id), lambda _key: load())

    def invalidate_all(self) -> None:
        """Forget every product in this process (the lab's flush; others keep theirs)."""
        self._entries.invalidate_all()

    async def changed(self, tenant_id: UUID, product_id: UUID) -> None:
        """Forget the product here, then in the other processes (never raises)."""
        self._entries.invalidate((tenant_id, product_id))
        await self._backend.publish(CHANNEL, f"{tenant_id} {product_id}")

    def listener(
        self, redis: aioredis.Redis, *, reconnect_delay: float = 1.0
    ) -> InvalidationListener:
        """The listener that applies the other processes' `changed` to this cache."""
        return InvalidationListener(
            redis,
            self.channel,
            apply=self._apply,
            drop_all=self._entries.invalidate_all,
            reconnect_delay=reconnect_delay,
        )

    def _apply(self, payload: bytes) -> bool:
        try:
            tenant_id, product_id = (UUID(part) for part in payload.decode().split(" "))
        except ValueError:  # UnicodeDecodeError is one
            return False
        self._entries.invalidate((tenant_id, product_id))
        return True
