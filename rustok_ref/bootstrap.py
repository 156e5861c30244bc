"""The one composition root: `Settings` in, the wired object graph out.

Nothing else builds engines, clients or providers; everything receives what it needs as
arguments (the review's first complaint was a different DI pattern per module). Later
features add their services here, one field each.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.commerce.checkout import SAGA_NAME as CHECKOUT_SAGA
from rustok_ref.commerce.checkout import CheckoutService, definitions
from rustok_ref.commerce.product_cache import ProductCache
from rustok_ref.commerce.providers.standin import StandInFaults
from rustok_ref.commerce.views import ORDER_VIEW, PRODUCT_VIEW
from rustok_ref.config import Settings
from rustok_ref.events.projections import TENANT_VIEW, Projection
from rustok_ref.events.relay import OutboxRelay, relay_crash_after
from rustok_ref.features.cache import FlagCache, FlagInvalidationListener, FlagInvalidationPublisher
from rustok_ref.features.service import FeatureFlags
from rustok_ref.features.store import FlagStore
from rustok_ref.resilience.breaker import BreakerConfig, CircuitBreaker
from rustok_ref.resilience.cache import ResilientRedisCache, counts_as_outage
from rustok_ref.saga.crash import crash_hook
from rustok_ref.saga.orchestrator import SagaOrchestrator
from rustok_ref.storage import create_engine, create_sessionmaker
from rustok_ref.telemetry import configure_tracing
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.invalidation import InvalidationListener, ResilientInvalidationPublisher
from rustok_ref.tenancy.repository import TenantRepository, load_tenant
from rustok_ref.tenancy.resolver import TenantResolver


@dataclass(frozen=True)
class Container:
    """Everything a request handler, worker or notebook needs, built once."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    tracer_provider: TracerProvider

    def key(self, *parts: str) -> str:
        """A Redis key (or stream, or channel) inside this run's prefix."""
        return self.settings.redis_prefix + ":".join(parts)


def projections() -> dict[str, Projection]:
    """The product's read views by name (what `rustok-ref projection` can rebuild)."""
    return {view.name: view for view in (TENANT_VIEW, PRODUCT_VIEW, ORDER_VIEW)}


@contextlib.asynccontextmanager
async def wire(
    settings: Settings, *, tracer_provider: TracerProvider | None = None
) -> AsyncIterator[Container]:
    """Build the graph, yield it, close what was opened (in reverse order)."""
    if settings.redis_url is None:
        raise ValueError("RUSTOK_REDIS_URL is not set; `rustok-ref infra up` prints one")
    engine = create_engine(settings)
    client = aioredis.Redis.from_url(settings.redis_url)
    provider = tracer_provider or configure_tracing()
    try:
        yield Container(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            redis=client,
            tracer_provider=provider,
        )
    finally:
        await client.aclose()
        await engine.dispose()
        if tracer_provider is None:
            provider.shutdown()


@dataclass(frozen=True)
class Services:
    """The domain services over one container: what the API (and a notebook driving the
    product) calls. Built by `services(container)`, which also runs their listeners."""

    container: Container
    tenant_cache: TenantCache
    resolver: TenantResolver
    tenants: TenantRepository
    redis_cache: ResilientRedisCache
    flag_store: FlagStore
    flag_cache: FlagCache
    flags: FeatureFlags
    product_cache: ProductCache
    orchestrator: SagaOrchestrator
    checkout: CheckoutService
    provider_faults: StandInFaults

    @property
    def redis_breaker(self) -> CircuitBreaker:
        """The breaker in front of Redis (`rustok_breaker_state{breaker="redis"}`)."""
        return self.redis_cache.breaker


@contextlib.asynccontextmanager
async def services(container: Container) -> AsyncIterator[Services]:
    """Build the services, run the cache invalidation listeners while the block runs, and
    let the checkouts this process started finish before closing."""
    settings, sessions = container.settings, container.sessions
    tenant_cache = TenantCache.from_settings(settings, functools.partial(load_tenant, sessions))
    breaker = CircuitBreaker(
        "redis",
        BreakerConfig(is_failure=counts_as_outage, timeout_s=settings.redis_breaker_timeout_s),
    )
    redis_cache = ResilientRedisCache(container.redis, settings.redis_prefix, breaker=breaker)
    flag_cache = FlagCache(ttl_s=settings.flag_cache_ttl_s)
    flag_store = FlagStore(
        sessions, after_commit=FlagInvalidationPublisher(redis_cache, local=flag_cache)
    )
    sagas = definitions(container)
    orchestrator = SagaOrchestrator(
        sessions,
        sagas,
        crash_hook=crash_hook(test_hooks=settings.test_hooks, crash_at=settings.crash_at),
    )
    checkout = CheckoutService(
        sessions,
        orchestrator,
        next(saga for saga in sagas if saga.name == CHECKOUT_SAGA),
        sync_wait_s=settings.saga_sync_wait,
    )
    built = Services(
        container=container,
        tenant_cache=tenant_cache,
        resolver=TenantResolver(tenant_cache, settings),
        tenants=TenantRepository(
            sessions, ResilientInvalidationPublisher(redis_cache, local=tenant_cache)
        ),
        redis_cache=redis_cache,
        flag_store=flag_store,
        flag_cache=flag_cache,
        flags=FeatureFlags(flag_store, cache=flag_cache),
        product_cache=ProductCache(
            redis_cache,
            ttl_s=settings.product_cache_ttl_s,
            capacity=settings.product_cache_capacity,
        ),
        orchestrator=orchestrator,
        checkout=checkout,
        provider_faults=StandInFaults(sessions),
    )
    async with (
        InvalidationListener(container.redis, settings.redis_prefix, tenant_cache),
        FlagInvalidationListener(container.redis, settings.redis_prefix, flag_cache),
        built.product_cache.listener(container.redis),
    ):
        try:
            yield built
        finally:
            await checkout.drain()


async def run_workers(container: Container, stop: asyncio.Event) -> None:
    """The background half of the product until `stop` is set: the outbox relay and the
    read views' consumers (several processes may run them: claims and consumer groups
    share the work)."""
    settings = container.settings
    relay = OutboxRelay(
        container.sessions,
        container.redis,
        prefix=settings.redis_prefix,
        crash_after=relay_crash_after(test_hooks=settings.test_hooks, crash_at=settings.crash_at),
    )
    consumers = [
        view.consumer(container.redis, container.sessions, prefix=settings.redis_prefix)
        for view in projections().values()
    ]
    for consumer in consumers:
        await consumer.setup()
    async with asyncio.TaskGroup() as group:
        group.create_task(relay.run(stop))
        for consumer in consumers:
            group.create_task(consumer.run(stop))
