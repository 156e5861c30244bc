"""The recommended tenant cache (review P1.1): moka-py bounds memory, this class adds what
the review's sketch and moka-py leave out.

- Expiry from an injected clock. moka-py takes no clock, so each entry carries its own
  deadlines (time-to-live from the load, time-to-idle from the last hit), read from `clock`;
  tests advance a fake clock instead of sleeping. moka's own ttl/tti are set `MEMORY_SLACK`
  times longer, only so memory is freed; they never decide what a caller sees.
- Negative caching: a not-found is cached for `negative_ttl` (shorter than `ttl`), so a flood
  of unknown identifiers costs one query per identifier. `negative_ttl=None` is the review's
  sketch, which caches found tenants only. Errors are never cached.
- Coalescing. The sync path coalesces threads through moka's `get_with`. moka-py has no
  awaitable `get_with`, and its async route, `@cached(wait_concurrent=True)`, keys by call
  arguments, takes no clock, cannot drop a load an invalidation superseded and, without a
  weigher, caches a failed call's exception; so the async path shares one `asyncio.Task`
  per key itself. Tasks on different event loops are not coalesced with each other: each
  loop loads for itself.
- A load that started before an invalidation never stores its (possibly stale) tenant: each
  load carries a stamp, the cache-wide epoch (bumped by `invalidate_all`) and the key's
  generation (bumped by `invalidate`), and is stored only while the stamp is unchanged; a
  caller that came after the invalidation does not get its result either, but loads again.
  Generations are kept per identifier invalidated since the last `invalidate_all`.
- Exact statistics (`CacheStats`), plain attribute counters. An increment has no
  eval-breaker check in CPython's GIL build, so threads lose none; a free-threaded build
  would need a lock.

The hit path makes no await, allocates nothing and is benchmarked against a raw moka-py get
(tests/benchmarks/test_tenant_cache_bench.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final, TypeVar

from moka_py import Moka

from rustok_ref.config import Settings
from rustok_ref.tenancy.cache_api import CacheStats
from rustok_ref.tenancy.model import SyncTenantLoader, Tenant, TenantIdentifier, TenantLoader

MEMORY_SLACK: Final = 1.1
"""moka's own ttl/tti, relative to the cache's: longer, so moka only frees memory."""

_DISCARDED: Final = float("-inf")
"""`expires_at` of an entry that must not be served (superseded, or a not-found not cached)."""

_EVICTED: Final = frozenset({"size", "expired"})
"""moka's removal causes that count as evictions (invalidations and replacements do not)."""

Stamp = tuple[int, int]
"""(cache epoch, key generation) when a load started; a later stamp compares greater."""

_Loader = TypeVar("_Loader", TenantLoader, SyncTenantLoader)


class _Entry:
    """A cached tenant (None: a cached not-found) with its deadlines on the cache's clock."""

    __slots__ = ("expires_at", "idle_until", "stamp", "tenant")

    def __init__(
        self, tenant: Tenant | None, stamp: Stamp, expires_at: float, idle_until: float
    ) -> None:
        self.tenant = tenant
        self.stamp = stamp
        self.expires_at = expires_at
        self.idle_until = idle_until


class _NotStored(Exception):  # noqa: N818 (a signal to moka's get_with, not an error)
    """Raised out of a `get_with` initializer so that moka stores nothing; every caller
    waiting on that load catches it and takes the result it carries."""

    def __init__(self, entry: _Entry) -> None:
        super().__init__()
        self.entry = entry


class TenantCache:
    """`await cache.get_or_load(identifier)` -> the tenant, or None when none has it.

    `loader` serves `get_or_load`, `sync_loader` serves `get_or_load_sync`; give either or
    both. `negative_ttl=None` gives the review's sketch (no not-found caching).
    """

    __slots__ = (
        "_clock",
        "_coalesced_waits",
        "_epoch",
        "_evictions",
        "_flights",
        "_generations",
        "_get",
        "_hits",
        "_load_failures",
        "_load_successes",
        "_load_time",
        "_loader",
        "_misses",
        "_negative_hits",
        "_negative_ttl",
        "_store",
        "_sync_loader",
        "_tti",
        "_ttl",
    )

    def __init__(
        self,
        loader: TenantLoader | None = None,
        sync_loader: SyncTenantLoader | None = None,
        *,
        capacity: int = 10_000,
        ttl: float = 300.0,
        tti: float = 180.0,
        negative_ttl: float | None = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        for name, value in (("ttl", ttl), ("tti", tti), ("negative_ttl", negative_ttl)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive seconds, got {value}")
        self._loader = loader
        self._sync_loader = sync_loader
        self._ttl = ttl
        self._tti = tti
        self._negative_ttl = negative_ttl
        self._clock = clock
        self._store: Moka[TenantIdentifier, _Entry] = Moka(
            capacity,
            ttl=ttl * MEMORY_SLACK,
            tti=tti * MEMORY_SLACK,
            eviction_listener=self._on_removal,
        )
        self._get = self._store.get
        self._flights: dict[TenantIdentifier, asyncio.Task[Tenant | None]] = {}
        self._epoch = 0
        self._generations: dict[TenantIdentifier, int] = {}
        self._hits = self._misses = self._negative_hits = self._coalesced_waits = 0
        self._load_successes = self._load_failures = self._evictions = 0
        self._load_time = 0.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        loader: TenantLoader | None = None,
        sync_loader: SyncTenantLoader | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> TenantCache:
        return cls(
            loader,
            sync_loader,
            capacity=settings.tenant_cache_capacity,
            ttl=settings.tenant_cache_ttl_s,
            tti=settings.tenant_cache_tti_s,
            negative_ttl=settings.tenant_negative_ttl_s,
            clock=clock,
        )

    # Lookups. The hit path is written out in both: a helper call would cost as much as
    # the rest of the hit.

    async def get_or_load(self, identifier: TenantIdentifier) -> Tenant | None:
        entry = self._get(identifier)
        if entry is not None:
            now = self._clock()
            if now < entry.expires_at and now < entry.idle_until:
                entry.idle_until = now + self._tti
                self._hits += 1
                if entry.tenant is None:
                    self._negative_hits += 1
                return entry.tenant
            self._drop(identifier, entry)
        return await self._load_coalesced(identifier)

    def get_or_load_sync(self, identifier: TenantIdentifier) -> Tenant | None:
        entry = self._get(identifier)
        if entry is not None:
            now = self._clock()
            if now < entry.expires_at and now < entry.idle_until:
                entry.idle_until = now + self._tti
                self._hits += 1
                if entry.tenant is None:
                    self._negative_hits += 1
                return entry.tenant
            self._drop(identifier, entry)
        return self._load_sync(identifier)

    # Invalidation.

    def invalidate(self, identifier: TenantIdentifier) -> None:
        """Forget one identifier; a load of it already under way will not be stored."""
        self._generations[identifier] = self._generations.get(identifier, 0) + 1
        self._flights.pop(identifier, None)
        self._store.remove(identifier)

    def invalidate_all(self) -> None:
        """Forget everything; no load under way will be stored."""
        self._epoch += 1
        self._generations.clear()
        self._flights.clear()
        self._store.clear()

    def size(self) -> int:
        """Entries held now, found and not-found ones (for the size gauge)."""
        self._store.run_pending_tasks()
        return self._store.count()

    def stats(self) -> CacheStats:
        self._store.run_pending_tasks()  # delivers pending evictions to the listener
        return CacheStats(
            request_count=self._hits + self._misses,
            hit_count=self._hits,
            miss_count=self._misses,
            load_success_count=self._load_successes,
            load_failure_count=self._load_failures,
            total_load_time=self._load_time,
            eviction_count=self._evictions,
            coalesced_wait_count=self._coalesced_waits,
            negative_hit_count=self._negative_hits,
        )

    # Misses.

    async def _load_coalesced(self, key: TenantIdentifier) -> Tenant | None:
        loop = asyncio.get_running_loop()
        flight = self._flights.get(key)
        if flight is not None and flight.get_loop() is loop:
            self._hits += 1
            self._coalesced_waits += 1
        else:
            loader = _required(self._loader, "loader")
            self._misses += 1
            flight = loop.create_task(self._load(loader, key, self._stamp(key)))
            self._flights[key] = flight
        # Shielded: a cancelled caller must not cancel the load the others wait for.
        return await asyncio.shield(flight)

    async def _load(
        self, loader: TenantLoader, key: TenantIdentifier, stamp: Stamp
    ) -> Tenant | None:
        started = time.perf_counter()
        try:
            tenant = await loader(key)
        except BaseException:
            self._load_failed(started)
            raise
        finally:
            if self._flights.get(key) is asyncio.current_task():
                self._flights.pop(key, None)
        entry = self._loaded(key, stamp, tenant, started)
        if entry.expires_at != _DISCARDED:
            self._store.set(key, entry)
            self._recheck(key, entry)
        return tenant

    def _load_sync(self, key: TenantIdentifier) -> Tenant | None:
        loader = _required(self._sync_loader, "sync_loader")
        led = False
        stamp = self._stamp(key)

        def initialize() -> _Entry:
            nonlocal led
            led = True
            return self._load_entry_sync(loader, key, stamp)

        try:
            while True:
                try:
                    entry = self._store.get_with(key, initialize)
                except _NotStored as not_stored:  # nothing was stored
                    if not_stored.entry.stamp >= stamp:  # not older than this caller
                        return not_stored.entry.tenant
                else:
                    self._recheck(key, entry)
                    if self._clock() < min(entry.expires_at, entry.idle_until):
                        return entry.tenant
                    self._drop(key, entry)
                stamp = self._stamp(key)
        finally:
            if led:
                self._misses += 1
            else:
                self._hits += 1
                self._coalesced_waits += 1

    def _load_entry_sync(
        self, loader: SyncTenantLoader, key: TenantIdentifier, stamp: Stamp
    ) -> _Entry:
        started = time.perf_counter()
        try:
            tenant = loader(key)
        except BaseException:
            self._load_failed(started)
            raise
        entry = self._loaded(key, stamp, tenant, started)
        if entry.expires_at == _DISCARDED:
            raise _NotStored(entry)
        return entry

    # Bookkeeping shared by both paths.

    def _stamp(self, key: TenantIdentifier) -> Stamp:
        return self._epoch, self._generations.get(key, 0)

    def _loaded(
        self, key: TenantIdentifier, stamp: Stamp, tenant: Tenant | None, started: float
    ) -> _Entry:
        """Count a successful load and build its entry, discarded when it must not be
        served from the cache: a not-found without negative caching, or a load that an
        invalidation superseded."""
        self._load_successes += 1
        self._load_time += time.perf_counter() - started
        ttl = self._ttl if tenant is not None else self._negative_ttl
        now = self._clock()
        if ttl is None or self._stamp(key) != stamp:
            return _Entry(tenant, stamp, _DISCARDED, _DISCARDED)
        return _Entry(tenant, stamp, now + ttl, now + self._tti)

    def _load_failed(self, started: float) -> None:
        self._load_failures += 1
        self._load_time += time.perf_counter() - started

    def _recheck(self, key: TenantIdentifier, entry: _Entry) -> None:
        """Discard a stored entry an invalidation superseded: one that landed between its
        load's stamp check and moka's insert found nothing to remove."""
        if self._stamp(key) != entry.stamp:
            entry.expires_at = _DISCARDED

    def _drop(self, key: TenantIdentifier, entry: _Entry) -> None:
        """Remove an entry found expired (an eviction) or discarded (not one)."""
        if self._store.remove(key) is entry and entry.expires_at != _DISCARDED:
            self._evictions += 1

    def _on_removal(self, key: TenantIdentifier, value: _Entry, cause: str) -> None:
        # Must never raise: moka-py turns that into a SystemError on the next cache call.
        if cause in _EVICTED:
            self._evictions += 1


def _required(loader: _Loader | None, name: str) -> _Loader:
    if loader is None:
        raise TypeError(f"this TenantCache was built without a {name}")
    return loader
