"""The three tenant caches of review P1.1 against the real database and Redis.

The variants: the review's sketch (`TenantCache(negative_ttl=None)`: moka, found tenants
only), the hand-written v1 the real server wires (`HandWrittenTenantCache`) and the
recommended `TenantCache`. Each measurement builds fresh caches over `load_tenant`, counts
the loader's calls and the SQL statements (`RoundTrips`), and returns plain numbers for the
notebook: loads against concurrent callers on one cold key, loads against requests in an
unknown-tenant flood, the hit ratio over time under a seeded Zipf mix, the time of a hit
beside a raw moka get, the lines of each variant, the delay of an invalidation between two
instances, the answers of v1 and the recommended cache fed the same requests, and the entries
the recommended cache holds as more distinct tenants than its capacity are loaded.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis.asyncio as aioredis
from moka_py import Moka
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.lab.codemetrics import RepoMetrics, measure
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.storage import create_engine, create_sessionmaker
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.cache_api import TenantCacheAPI
from rustok_ref.tenancy.cache_v1 import HandWrittenTenantCache
from rustok_ref.tenancy.invalidation import InvalidationListener, RedisInvalidationPublisher
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier
from rustok_ref.tenancy.repository import TenantRepository, load_tenant

Variant = Literal["sketch", "v1", "recommended"]
VARIANTS: tuple[Variant, ...] = ("sketch", "v1", "recommended")
STATEMENTS_PER_LOAD = 2  # the unit of work's role set-up, then the SELECT
VARIANT_FILES: dict[str, str] = {
    "hand-written v1": "cache_v1.py",
    "recommended (and the sketch)": "cache.py",
}
SHARED_FILES: tuple[str, ...] = ("cache_api.py", "invalidation.py", "model.py")
RUSTOK_CACHE_FILES: dict[str, str] = {
    "hand-written (middleware/tenant.rs)": "apps/server/src/middleware/tenant.rs",
    "moka-based (tenant_cache_v2.rs)": "tenant_cache_v2.rs",
}


def build(variant: Variant, loader: CountingLoader) -> TenantCacheAPI:
    """A fresh cache of `variant` over `loader`."""
    if variant == "v1":
        return HandWrittenTenantCache(loader)
    return TenantCache(loader, negative_ttl=None if variant == "sketch" else 60.0)


class CountingLoader:
    """`load_tenant` on the lab's database, counting its calls."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.calls = 0

    async def __call__(self, identifier: TenantIdentifier) -> Tenant | None:
        self.calls += 1
        return await load_tenant(self.sessions, identifier)


def slug(value: str) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.SLUG, value)


def unknown_identifiers(count: int, label: str = "nobody") -> list[TenantIdentifier]:
    """`count` slugs no tenant has."""
    return [slug(f"{label}-{uuid.uuid4().hex[:12]}") for _ in range(count)]


@dataclass(frozen=True)
class Loads:
    """A measurement's loader calls and database loads (SQL statements / per load)."""

    calls: int
    statements: int

    @property
    def database_loads(self) -> float:
        return self.statements / STATEMENTS_PER_LOAD


@dataclass
class Lab:
    """The database, Redis and seeded tenants the measurements share; `await close()`."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    trips: RoundTrips
    tenants: list[Tenant]

    @classmethod
    async def open(cls, database_url: str, redis_url: str, redis_prefix: str, tenants: int) -> Lab:
        """Connect and create `tenants` tenants (their invalidations go to the prefix)."""
        settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            backend="external",
        )
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        client = aioredis.Redis.from_url(redis_url)
        trips = RoundTrips()
        trips.watch_engine(engine)
        repository = TenantRepository(
            sessions, RedisInvalidationPublisher(client, f"{redis_prefix}tenant-cache-nb:")
        )
        run = uuid.uuid4().hex[:8]
        created = [
            await repository.create(f"t{index}-{run}", f"Tenant {index}")
            for index in range(tenants)
        ]
        return cls(settings, engine, sessions, client, trips, created)

    async def close(self) -> None:
        self.trips.close()
        await self.redis.aclose()
        await self.engine.dispose()

    def known(self) -> list[TenantIdentifier]:
        return [slug(tenant.slug) for tenant in self.tenants]

    async def stampede(self, variant: Variant, identifier: TenantIdentifier, callers: int) -> Loads:
        """`callers` tasks released together on one cold key of a fresh cache."""
        loader = CountingLoader(self.sessions)
        cache = build(variant, loader)
        barrier = asyncio.Barrier(callers)

        async def caller() -> Tenant | None:
            await barrier.wait()
            return await cache.get_or_load(identifier)

        self.trips.reset()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return Loads(loader.calls, self.trips.database)

    async def flood(
        self, variant: Variant, identifiers: Sequence[TenantIdentifier], repeats: int
    ) -> list[Loads]:
        """Waves of requests for `identifiers` (no tenant has them), all of one wave at
        once; the loads after each wave, cumulative."""
        loader = CountingLoader(self.sessions)
        cache = build(variant, loader)
        self.trips.reset()
        after: list[Loads] = []
        for _ in range(repeats):
            await asyncio.gather(*(cache.get_or_load(i) for i in identifiers))
            after.append(Loads(loader.calls, self.trips.database))
        return after

    async def hit_ratio(
        self, variant: Variant, requests: Sequence[TenantIdentifier], window: int
    ) -> list[float]:
        """The share of each `window` of sequential `requests` answered without a load."""
        loader = CountingLoader(self.sessions)
        cache = build(variant, loader)
        ratios: list[float] = []
        for start in range(0, len(requests), window):
            chunk = requests[start : start + window]
            before = loader.calls
            for identifier in chunk:
                await cache.get_or_load(identifier)
            ratios.append(1.0 - (loader.calls - before) / len(chunk))
        return ratios

    async def hit_path(self, iterations: int) -> dict[str, list[int]]:
        """Nanoseconds of each of `iterations` hits on a warm key, per variant, interleaved
        with a raw moka get of a stored value."""
        key = self.known()[0]
        caches = {variant: build(variant, CountingLoader(self.sessions)) for variant in VARIANTS}
        for cache in caches.values():
            await cache.get_or_load(key)
        raw: Moka[TenantIdentifier, Tenant] = Moka(16)
        raw.set(key, self.tenants[0])
        timings: dict[str, list[int]] = {name: [] for name in ("raw moka get", *VARIANTS)}
        clock = time.perf_counter_ns
        for _ in range(iterations):
            began = clock()
            raw.get(key)
            timings["raw moka get"].append(clock() - began)
            for variant, cache in caches.items():
                began = clock()
                await cache.get_or_load(key)
                timings[variant].append(clock() - began)
        return timings

    async def invalidation_delays(self, samples: int) -> list[float]:
        """Seconds from a publish on one instance until the other's listener applied it,
        each instance with its own Redis client, cache and listener."""
        prefix = f"{self.settings.redis_prefix}inv-{uuid.uuid4().hex[:8]}:"
        assert self.settings.redis_url is not None  # set by `open`
        second = aioredis.Redis.from_url(self.settings.redis_url)
        return await _delays(self, second, prefix, samples)

    async def parallel_run(
        self, requests: Sequence[TenantIdentifier], invalidate_every: int, seed: int
    ) -> tuple[int, int]:
        """(mismatches, lookups): v1 and the recommended cache fed the same `requests`,
        with an invalidation of a random requested identifier every `invalidate_every`."""
        rng = random.Random(seed)
        v1 = build("v1", CountingLoader(self.sessions))
        recommended = build("recommended", CountingLoader(self.sessions))
        mismatches = 0
        for index, identifier in enumerate(requests, start=1):
            if await v1.get_or_load(identifier) != await recommended.get_or_load(identifier):
                mismatches += 1
            if index % invalidate_every == 0:
                target = rng.choice(requests[:index])
                v1.invalidate(target)
                recommended.invalidate(target)
        return mismatches, len(requests)

    async def repeated_unknown(self, variant: Variant, lookups: int) -> int:
        """Loader calls for `lookups` sequential lookups of one unknown identifier."""
        loader = CountingLoader(self.sessions)
        cache = build(variant, loader)
        nobody = unknown_identifiers(1)[0]
        for _ in range(lookups):
            await cache.get_or_load(nobody)
        return loader.calls

    async def held_entries(self, capacity: int) -> list[int]:
        """Entries a recommended cache of `capacity` holds after each of the lab's tenants is
        loaded in turn: loads minus size evictions, counted once moka's pending work has run
        (`stats()` runs it), so a bound that only holds eventually still counts."""
        cache = TenantCache(CountingLoader(self.sessions), capacity=capacity)
        held = []
        for identifier in self.known():
            await cache.get_or_load(identifier)
            stats = cache.stats()
            held.append(stats.load_success_count - stats.eviction_count)
        return held


async def _delays(lab: Lab, second: aioredis.Redis, prefix: str, samples: int) -> list[float]:
    first_cache = TenantCache(CountingLoader(lab.sessions))
    second_cache = TenantCache(CountingLoader(lab.sessions))
    publisher = RedisInvalidationPublisher(lab.redis, prefix, local=first_cache)
    delays: list[float] = []
    try:
        async with (
            InvalidationListener(lab.redis, prefix, first_cache) as first,
            InvalidationListener(second, prefix, second_cache) as listener,
        ):
            await first.wait_subscribed()
            await listener.wait_subscribed()
            identifiers = lab.known()
            for index in range(samples):
                began = time.perf_counter()
                await publisher.publish([identifiers[index % len(identifiers)]])
                await listener.wait_messages(index + 1)
                delays.append(time.perf_counter() - began)
    finally:
        await second.aclose()
    return delays


def zipf_requests(
    identifiers: Sequence[TenantIdentifier], count: int, exponent: float, seed: int
) -> list[TenantIdentifier]:
    """`count` draws from `identifiers`, the k-th (from 1) weighted 1 / k**exponent."""
    if not identifiers:
        raise ValueError("no identifiers to draw from")
    if count < 0 or exponent < 0:
        raise ValueError("count and exponent must not be negative")
    weights = [1.0 / rank**exponent for rank in range(1, len(identifiers) + 1)]
    return random.Random(seed).choices(list(identifiers), weights=weights, k=count)


def interleave_unknown(
    known: Sequence[TenantIdentifier], unknown: Sequence[TenantIdentifier], seed: int
) -> list[TenantIdentifier]:
    """Known and unknown identifiers in one seeded random rank order (the Zipf ranks)."""
    merged = [*known, *unknown]
    random.Random(seed).shuffle(merged)
    return merged


def lines_of_code(root: Path) -> dict[str, int]:
    """Code lines (codemetrics) of each variant's module and of the modules they share,
    under `root` (rustok_ref/tenancy)."""
    files = {Path(f.path).name: f.code for f in measure(root).files}
    counts = {label: files[name] for label, name in VARIANT_FILES.items()}
    counts["shared (interface, invalidation, model)"] = sum(files[name] for name in SHARED_FILES)
    return counts


def rustok_cache_lines(metrics: RepoMetrics) -> dict[str, int | None]:
    """Physical lines of RusToK's two tenant caches in a measured checkout (None: absent)."""
    found: dict[str, int | None] = {}
    for label, suffix in RUSTOK_CACHE_FILES.items():
        matches = [f.physical for f in metrics.files if f.path.endswith(suffix)]
        found[label] = matches[0] if matches else None
    return found


def change_percent(before: int, after: int) -> float:
    """`after` relative to `before`, in percent (-74 is the review's figure)."""
    if before <= 0:
        raise ValueError("before must be positive")
    return 100.0 * (after - before) / before


def entries_above(held: Sequence[int], capacity: int) -> int:
    """The most entries held above `capacity` at any point (0: the bound always held)."""
    return max([0, *(count - capacity for count in held)])
