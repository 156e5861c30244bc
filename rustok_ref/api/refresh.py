"""The lifespan's metrics refresher: every `metrics_refresh_s`, copy the process's state
into the gauges and counters of `ApiMetrics`.

In-memory state (tenant and product caches, breaker, dispatcher, rate limiter) is read
directly; the outbox backlog costs one query (the relay's, as the worker role). A failing
query is logged and skipped: the gauges keep their last values and the next round tries
again.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from rustok_ref.api.context import ApiState
from rustok_ref.events.relay import backlog

__all__ = ["refresh_metrics", "refresh_once"]

logger = logging.getLogger(__name__)


async def refresh_once(api: ApiState, *, timeout_s: float) -> None:
    """One round; each database query is bounded by `timeout_s`."""
    services, metrics = api.services, api.metrics
    cache = services.tenant_cache
    # TenantCache has no public size yet (requested): its moka store counts the entries.
    metrics.record_tenant_cache(cache.stats(), cache.size())
    products = services.product_cache
    metrics.record_product_cache(hits=products.hits, misses=products.misses, size=products.size())
    breaker = services.redis_breaker
    metrics.record_breaker(breaker.name, breaker.state)
    metrics.record_dispatcher_depth(api.dispatcher.depth)
    metrics.record_rate_limit(api.limiter.stats)
    try:
        metrics.record_outbox(
            await asyncio.wait_for(backlog(services.container.sessions), timeout_s)
        )
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        logger.warning("metrics refresh: the database did not answer: %r", exc)


async def refresh_metrics(api: ApiState, *, every_s: float, timeout_s: float) -> None:
    """Refresh until cancelled (the lifespan cancels it at shutdown)."""
    while True:
        try:
            await refresh_once(api, timeout_s=timeout_s)
        except Exception:
            logger.exception("metrics refresh failed; trying again later")
        await asyncio.sleep(every_s)
