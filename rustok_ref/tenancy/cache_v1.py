"""The hand-written tenant cache: RusToK's v1 `TenantCacheInfrastructure`, the one the real
server wires (reference §2.1), kept beside the recommended `TenantCache` so that notebooks
measure both and count the lines of each (review P1.1: "580 lines -> ~150 with moka").

Faithful to the real code:
- two caches, positive and negative, of `CAPACITY` entries each, TTL only (300 s and 60 s),
  keys `tenant:v1:{kind}:{value}` and `tenant_negative:v1:{kind}:{value}`;
- the request algorithm: negative check, positive check, then a single flight per key whose
  followers, once woken, re-read the positive cache and loop when it is empty, without
  re-checking the negative cache: after a not-found (or an error) each follower becomes the
  next leader and queries again, so a stampede on an unknown tenant is serialised, not
  collapsed;
- its six counters; with Redis configured each increment also does
  `INCR {prefix}tenant_metrics:v1:{name}` and a Redis failure fails the request;
- `invalidate` deletes both keys; a load in flight across an invalidation still stores what
  it read (v1 has no guard against that).

Fixed, and only this: the lost-wakeup race. In v1 a follower starts waiting only after it
released the lock and awaited its metrics increment (a Redis INCR), so a leader finishing in
that window wakes nobody and the follower waits forever. Here the follower takes the key's
`Event` before that await, and the Event stays set, so a late waiter passes straight through.

Added, the review's fix (P1.2): `backend=`, a `ResilientRedisCache`, in place of `redis=`.
Then each INCR goes through its breaker with its timeout, and a Redis outage costs the Redis
copy of the counters, not the request; the default (`redis=`) keeps v1's failure, so a
notebook measures both.

Not reproduced: with Redis configured the real v1 also keeps both caches in Redis
(`tenant-cache:v1:data:...`); here they stay in memory and Redis carries the metrics only.
Invalidation messages use the one format of `invalidation.py`, not v1's
`"{positive}|{negative}"`. Added for the shared interface: the sync path (the same algorithm
over threading primitives, in-memory metrics only: the real v1 is async-only),
`invalidate_all`, and load counters for `stats()`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Final

import redis.asyncio as aioredis
from moka_py import Moka
from redis.exceptions import RedisError

from rustok_ref.errors import InternalError
from rustok_ref.resilience.cache import ResilientRedisCache
from rustok_ref.tenancy.cache_api import CacheStats
from rustok_ref.tenancy.model import SyncTenantLoader, Tenant, TenantIdentifier, TenantLoader

VERSION: Final = "v1"
CAPACITY: Final = 1000
TTL: Final = 300.0
NEGATIVE_TTL: Final = 60.0
METRICS: Final = (
    "hits",
    "misses",
    "negative_hits",
    "negative_misses",
    "negative_inserts",
    "coalesced_requests",
)


def cache_key(identifier: TenantIdentifier) -> str:
    """`tenant:v1:{kind}:{value}` (a host is lowercased again, as v1 does)."""
    return f"tenant:{VERSION}:{identifier.kind}:{_key_value(identifier)}"


def negative_key(identifier: TenantIdentifier) -> str:
    return f"tenant_negative:{VERSION}:{identifier.kind}:{_key_value(identifier)}"


def _key_value(identifier: TenantIdentifier) -> str:
    return identifier.value.lower() if identifier.kind == "host" else identifier.value


class HandWrittenTenantCache:
    """v1: `await cache.get_or_load(identifier)`; give `redis` (and the run's `redis_prefix`)
    for v1's Redis metrics, or `backend` (keys under its prefix) for the same metrics through
    the resilient cache."""

    def __init__(
        self,
        loader: TenantLoader | None = None,
        sync_loader: SyncTenantLoader | None = None,
        *,
        redis: aioredis.Redis | None = None,
        redis_prefix: str = "",
        backend: ResilientRedisCache | None = None,
    ) -> None:
        if redis is not None and not redis_prefix:
            raise ValueError("v1's Redis metrics need the run's redis_prefix")
        if redis is not None and backend is not None:
            raise ValueError("give v1 either redis (faithful) or backend (resilient), not both")
        self._loader = loader
        self._sync_loader = sync_loader
        self._redis = redis
        self._redis_prefix = redis_prefix
        self._backend = backend
        self._positive: Moka[str, Tenant] = Moka(CAPACITY, ttl=TTL)
        self._negative: Moka[str, bool] = Moka(CAPACITY, ttl=NEGATIVE_TTL)
        self._flights: dict[str, asyncio.Event] = {}
        self._thread_flights: dict[str, threading.Event] = {}
        self._thread_lock = threading.Lock()
        self._metrics = dict.fromkeys(METRICS, 0)
        self._load_successes = self._load_failures = 0
        self._load_time = 0.0

    async def get_or_load(self, identifier: TenantIdentifier) -> Tenant | None:
        positive, negative = cache_key(identifier), negative_key(identifier)
        if self._negative.get(negative) is not None:
            await self._count("negative_hits")
            return None
        await self._count("negative_misses")
        while True:
            tenant = self._positive.get(positive)
            if tenant is not None:
                await self._count("hits")
                return tenant
            await self._count("misses")
            flight = self._flights.get(positive)
            if flight is None:
                return await self._lead(identifier, positive, negative)
            # v1 began to wait only after this await: the lost wakeup. `flight` stays set.
            await self._count("coalesced_requests")
            await flight.wait()

    def get_or_load_sync(self, identifier: TenantIdentifier) -> Tenant | None:
        if self._redis is not None or self._backend is not None:
            raise TypeError("v1 is async-only: its sync path has no Redis metrics")
        positive, negative = cache_key(identifier), negative_key(identifier)
        if self._negative.get(negative) is not None:
            self._metrics["negative_hits"] += 1
            return None
        self._metrics["negative_misses"] += 1
        while True:
            tenant = self._positive.get(positive)
            if tenant is not None:
                self._metrics["hits"] += 1
                return tenant
            self._metrics["misses"] += 1
            loader = self._sync_loader
            if loader is None:
                raise TypeError("this HandWrittenTenantCache was built without a sync_loader")
            with self._thread_lock:
                flight = self._thread_flights.get(positive)
                if flight is None:
                    self._thread_flights[positive] = threading.Event()
            if flight is None:
                return self._lead_sync(loader, identifier, positive, negative)
            self._metrics["coalesced_requests"] += 1
            flight.wait()

    def invalidate(self, identifier: TenantIdentifier) -> None:
        self._positive.remove(cache_key(identifier))
        self._negative.remove(negative_key(identifier))

    def invalidate_all(self) -> None:
        self._positive.clear()
        self._negative.clear()

    def metrics(self) -> dict[str, int]:
        """v1's own six counters (this process's)."""
        return dict(self._metrics)

    def stats(self) -> CacheStats:
        """v1's counters under Caffeine's names. As in v1, a follower's re-read of the
        positive cache counts a second hit or miss, so hits + misses can exceed requests;
        v1 never counted evictions."""
        m = self._metrics
        return CacheStats(
            request_count=m["negative_hits"] + m["negative_misses"],
            hit_count=m["hits"] + m["negative_hits"],
            miss_count=m["misses"],
            load_success_count=self._load_successes,
            load_failure_count=self._load_failures,
            total_load_time=self._load_time,
            coalesced_wait_count=m["coalesced_requests"],
            negative_hit_count=m["negative_hits"],
        )

    async def _lead(
        self, identifier: TenantIdentifier, positive: str, negative: str
    ) -> Tenant | None:
        if self._loader is None:
            raise TypeError("this HandWrittenTenantCache was built without a loader")
        done = self._flights[positive] = asyncio.Event()
        started = time.perf_counter()
        try:
            tenant = await self._loader(identifier)
            self._store(tenant, positive, negative, started)
        except BaseException:
            self._load_failed(started)
            raise
        finally:
            self._flights.pop(positive, None)
            done.set()
        if tenant is None:
            await self._count("negative_inserts")
        return tenant

    def _lead_sync(
        self, loader: SyncTenantLoader, identifier: TenantIdentifier, positive: str, negative: str
    ) -> Tenant | None:
        started = time.perf_counter()
        try:
            tenant = loader(identifier)
            self._store(tenant, positive, negative, started)
        except BaseException:
            self._load_failed(started)
            raise
        finally:
            with self._thread_lock:
                self._thread_flights.pop(positive).set()
        if tenant is None:
            self._metrics["negative_inserts"] += 1
        return tenant

    def _store(self, tenant: Tenant | None, positive: str, negative: str, started: float) -> None:
        self._load_successes += 1
        self._load_time += time.perf_counter() - started
        if tenant is None:
            self._negative.set(negative, True)
        else:
            self._positive.set(positive, tenant)

    def _load_failed(self, started: float) -> None:
        self._load_failures += 1
        self._load_time += time.perf_counter() - started

    async def _count(self, name: str) -> None:
        self._metrics[name] += 1
        if self._backend is not None:
            await self._backend.incr(f"tenant_metrics:{VERSION}:{name}")  # never raises
            return
        if self._redis is None:
            return
        try:
            await self._redis.incr(f"{self._redis_prefix}tenant_metrics:{VERSION}:{name}")
        except RedisError as exc:
            raise InternalError(f"tenant cache metrics: Redis failed: {exc}") from exc
