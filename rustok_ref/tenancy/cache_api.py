"""What every tenant cache variant offers, so the resolver, the invalidation listener, the
tests and the notebooks treat the recommended cache, the review's sketch and the hand-written
v1 alike; and the statistics all three report, under Caffeine's names (`CacheStats`).

Each variant lives in its own module (`cache.py`, `cache_v1.py`) so a notebook can count the
lines of each; only this interface is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rustok_ref.tenancy.model import Tenant, TenantIdentifier


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Exact counters since the cache was built, named as Caffeine's `CacheStats` names them.

    `request_count` = `hit_count` + `miss_count`; a caller that joins another caller's load
    counts as a hit (as in Caffeine's async cache, whose in-flight future is the cached value)
    and also in `coalesced_wait_count`. A cached not-found is a hit, counted again in
    `negative_hit_count`. `eviction_count` counts entries that left for size or expiry, never
    invalidations. `total_load_time` is in seconds.
    """

    request_count: int = 0
    hit_count: int = 0
    miss_count: int = 0
    load_success_count: int = 0
    load_failure_count: int = 0
    total_load_time: float = 0.0
    eviction_count: int = 0
    coalesced_wait_count: int = 0
    negative_hit_count: int = 0


class TenantCacheAPI(Protocol):
    """One tenant cache: look up (loading on a miss, callers of one key sharing one load),
    forget one identifier or everything, report statistics.

    `get_or_load` coalesces the tasks of one event loop; `get_or_load_sync` coalesces
    threads. Callers on different event loops are not coalesced with each other.
    `None` means no tenant has that identifier.
    """

    async def get_or_load(self, identifier: TenantIdentifier) -> Tenant | None: ...

    def get_or_load_sync(self, identifier: TenantIdentifier) -> Tenant | None: ...

    def invalidate(self, identifier: TenantIdentifier) -> None: ...

    def invalidate_all(self) -> None: ...

    def stats(self) -> CacheStats: ...
