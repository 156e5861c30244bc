"""The lifespan's metrics refresher: every `metrics_refresh_s`, copy the process's state
into the gauges and counters of `ApiMetrics`.

In-memory state (tenant and product caches, breaker, dispatcher, rate limiter) is read
directly; the database-wide state costs one query for the outbox backlog (the relay's, as
the worker role) and one for the sagas' outcomes. A failing query is logged and skipped:
the gauges keep their last values and the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.api.context import ApiState
from rustok_ref.api.metrics import SAGA_OUTCOMES
from rustok_ref.events.relay import backlog
from rustok_ref.saga.log import SagaState
from rustok_ref.storage.roles import DbRole
from rustok_ref.storage.tables import saga_instances
from rustok_ref.storage.unit_of_work import UnitOfWork

__all__ = ["refresh_metrics", "refresh_once", "saga_outcome_counts"]

logger = logging.getLogger(__name__)


async def saga_outcome_counts(sessions: async_sessionmaker[AsyncSession]) -> dict[SagaState, int]:
    """Finished sagas of every tenant by final state."""
    query = (
        select(saga_instances.c.state, func.count())
        .where(saga_instances.c.state.in_([state.value for state in SAGA_OUTCOMES]))
        .group_by(saga_instances.c.state)
    )
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        rows = (await uow.session.execute(query)).all()
    return {SagaState(state): int(count) for state, count in rows}


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
    sessions = services.container.sessions
    try:
        metrics.record_outbox(await asyncio.wait_for(backlog(sessions), timeout_s))
        metrics.record_saga_outcomes(
            await asyncio.wait_for(saga_outcome_counts(sessions), timeout_s)
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
