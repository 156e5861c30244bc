"""The one composition root: `Settings` in, the wired object graph out.

Nothing else builds engines, clients or providers; everything receives what it needs as
arguments (the review's first complaint was a different DI pattern per module). Later
features add their services here, one field each.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.commerce.views import ORDER_VIEW, PRODUCT_VIEW
from rustok_ref.config import Settings
from rustok_ref.events.projections import TENANT_VIEW, Projection
from rustok_ref.storage import create_engine, create_sessionmaker
from rustok_ref.telemetry import configure_tracing


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
