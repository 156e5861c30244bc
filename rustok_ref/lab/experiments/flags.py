"""Per-tenant feature flags (review T3) against the real database and Redis.

The lab wires the service as the server would: a `FlagStore` whose committed changes go
through `FlagInvalidationPublisher` (the local cache forgets the tenant, Redis tells the
other instances), a `FeatureFlags` on a warm `FlagCache`, and one with `cache=False` (the
review's sketch). The measurements return plain numbers for notebook 08: the tenant x feature
matrix before and after one tenant's flag flips, the share of tenants a rollout enables and
whether raising it only adds tenants (the real evaluation rule on seeded tenant ids), the
time and database statements of one evaluation per mode, and the share of `require` calls to
disabled features refused with FeatureNotEnabled (HTTP 403, GraphQL FORBIDDEN), through the
service or through the GraphQL field guard (`RequireFeature`) the schema puts on every
commerce field.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import cast

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from rustok_ref.api.graphql.context import GraphQLInfo
from rustok_ref.api.graphql.permissions import RequireFeature
from rustok_ref.config import Settings
from rustok_ref.errors import FeatureNotEnabledError
from rustok_ref.features import (
    Feature,
    FeatureFlags,
    FlagCache,
    FlagInvalidationPublisher,
    FlagState,
    FlagStore,
    evaluate,
)
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.resilience import ResilientRedisCache
from rustok_ref.storage import create_engine, create_sessionmaker

Matrix = list[list[bool]]
"""One row per tenant, one column per feature: whether the feature is on."""

FEATURES: tuple[Feature, ...] = tuple(Feature)


def tenant_ids(count: int, *, seed: int) -> list[uuid.UUID]:
    """`count` version-4 tenant ids drawn from `seed` (the same ids for the same seed)."""
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]


def rollout_matrix(
    tenants: Sequence[uuid.UUID], feature: Feature, percentages: Sequence[int]
) -> Matrix:
    """Per tenant, per percentage: whether an enabled flag with that rollout is on for it
    (the service's own evaluation rule, without the database)."""
    return [
        [
            evaluate(tenant, feature, FlagState(tenant, feature, True, rollout=p)).value
            for p in percentages
        ]
        for tenant in tenants
    ]


def rollout_shares(matrix: Matrix) -> list[float]:
    """Per percentage (column): the percent of tenants enabled."""
    return [100 * sum(column) / len(column) for column in zip(*matrix, strict=True)]


def rollout_losses(matrix: Matrix) -> list[int]:
    """Per step up in percentage: tenants enabled before the step and not after it (a sticky
    rollout loses none)."""
    steps = len(matrix[0]) - 1 if matrix else 0
    return [sum(row[i] and not row[i + 1] for row in matrix) for i in range(steps)]


def changed_cells(before: Matrix, after: Matrix) -> list[tuple[int, int]]:
    """The (tenant row, feature column) cells whose value differs."""
    return [
        (i, j)
        for i, (old, new) in enumerate(zip(before, after, strict=True))
        for j, (a, b) in enumerate(zip(old, new, strict=True))
        if a != b
    ]


@dataclass
class Lab:
    """The database, Redis and service the measurements share; `await close()`."""

    engine: AsyncEngine
    redis: aioredis.Redis
    trips: RoundTrips
    store: FlagStore
    cached: FeatureFlags
    uncached: FeatureFlags

    @classmethod
    async def open(cls, database_url: str, redis_url: str, redis_prefix: str) -> Lab:
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
        cache = FlagCache()
        publisher = FlagInvalidationPublisher(
            ResilientRedisCache(client, f"{redis_prefix}flags-nb:"), local=cache
        )
        store = FlagStore(sessions, after_commit=publisher)
        return cls(
            engine,
            client,
            trips,
            store,
            FeatureFlags(store, cache=cache),
            FeatureFlags(store, cache=False),
        )

    async def close(self) -> None:
        self.trips.close()
        await self.redis.aclose()
        await self.engine.dispose()

    async def seed_flags(self, tenants: Sequence[uuid.UUID], *, seed: int) -> None:
        """Give each tenant a seeded flag per feature: on or off (some features get none)."""
        rng = random.Random(seed)
        for tenant in tenants:
            for feature in FEATURES:
                choice = rng.random()
                if choice < 0.85:
                    await self.store.set(tenant, feature, enabled=choice < 0.5)

    async def matrix(self, tenants: Sequence[uuid.UUID]) -> Matrix:
        """What the cached service answers for every tenant and feature."""
        return [[await self.cached.is_enabled(t, f) for f in FEATURES] for t in tenants]

    async def flip(
        self, tenants: Sequence[uuid.UUID], tenant: uuid.UUID, feature: Feature
    ) -> tuple[Matrix, Matrix]:
        """The matrix with a warm cache, then again after `tenant`'s `feature` is switched
        the other way through the store (no restart, the same service and cache)."""
        before = await self.matrix(tenants)
        now_on = await self.cached.is_enabled(tenant, feature)
        await self.store.set(tenant, feature, enabled=not now_on)
        return before, await self.matrix(tenants)

    async def latencies(
        self, flags: FeatureFlags, tenant: uuid.UUID, feature: Feature, iterations: int
    ) -> tuple[list[float], float]:
        """Seconds per evaluation, and database statements per evaluation, over
        `iterations` evaluations after one warm-up."""
        await flags.is_enabled(tenant, feature)
        self.trips.reset()
        seconds = []
        for _ in range(iterations):
            started = time.perf_counter()
            await flags.is_enabled(tenant, feature)
            seconds.append(time.perf_counter() - started)
        return seconds, self.trips.database / iterations

    async def refused_share(
        self, flags: FeatureFlags, tenants: Sequence[uuid.UUID], *, through_guard: bool = False
    ) -> float:
        """Percent of calls to features that are off for the tenant refused with
        FeatureNotEnabledError mapped to HTTP 403 and GraphQL FORBIDDEN (100 when there are
        none to call): `require` on the service, or with `through_guard` the GraphQL field
        guard's permission check over the same service."""
        calls = refused = 0
        for tenant in tenants:
            for feature in FEATURES:
                if await flags.is_enabled(tenant, feature):
                    continue
                calls += 1
                try:
                    if through_guard:
                        await RequireFeature(feature).has_permission(
                            None, guard_info(flags, tenant)
                        )
                    else:
                        await flags.require(tenant, feature)
                except FeatureNotEnabledError as refusal:
                    refused += refusal.status == 403 and refusal.code == "FORBIDDEN"
        return 100.0 if calls == 0 else 100 * refused / calls


def guard_info(flags: FeatureFlags, tenant: uuid.UUID) -> GraphQLInfo:
    """What the guard reads of strawberry's Info: the caller's tenant and services.flags
    (a whole request would need the API; the guard's check is what the claim is about)."""
    caller = SimpleNamespace(
        tenant=SimpleNamespace(id=tenant), services=SimpleNamespace(flags=flags)
    )
    return cast(GraphQLInfo, SimpleNamespace(context=SimpleNamespace(rustok=caller)))
