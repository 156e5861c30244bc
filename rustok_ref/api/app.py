"""`create_app(settings)`: the FastAPI application over the wired services.

The lifespan wires the container and the services (the composition root), finishes or
undoes the sagas a crash left behind before the first request is served and every
`RUSTOK_SAGA_RECOVER_EVERY_S` after (unless `RUSTOK_API_RECOVER_SAGAS=false`), and (unless
`RUSTOK_API_RUN_WORKERS=false`) runs the outbox relay and the read views beside the
requests. It also runs the burst endpoint's in-process dispatcher and the metrics refresher,
which copies the process's state into the gauges every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from rustok_ref import __version__
from rustok_ref.api import graphql
from rustok_ref.api.auth import ApiKeys
from rustok_ref.api.burst import burst_dispatcher
from rustok_ref.api.context import ApiState
from rustok_ref.api.metrics import ApiMetrics
from rustok_ref.api.middleware import RequestMiddleware
from rustok_ref.api.problems import install_problem_handlers
from rustok_ref.api.ratelimit import RateLimiter
from rustok_ref.api.refresh import refresh_metrics
from rustok_ref.api.routes import ROUTERS
from rustok_ref.api.schemas import document_problems
from rustok_ref.bootstrap import run_workers, services, wire
from rustok_ref.config import Settings
from rustok_ref.saga import SagaOrchestrator
from rustok_ref.telemetry import configure_tracing

__all__ = ["create_app", "serve_app"]

logger = logging.getLogger(__name__)


async def _recover_sagas(orchestrator: SagaOrchestrator, idle_s: float) -> None:
    report = await orchestrator.recover(idle_for=timedelta(seconds=idle_s))
    if report.finished or report.skipped:
        logger.info(
            "saga recovery: %d finished, %d skipped", len(report.finished), len(report.skipped)
        )


async def _recover_periodically(orchestrator: SagaOrchestrator, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.saga_recover_every_s)
        try:
            await _recover_sagas(orchestrator, settings.saga_recover_every_s)
        except Exception:
            logger.exception("periodic saga recovery failed; trying again later")


def serve_app() -> FastAPI:
    """The factory `rustok-ref serve` hands uvicorn (each worker calls it): settings from
    the environment, and its tracer provider made the process-wide one, so the services'
    spans are exported with the requests'."""
    return create_app(install_global_tracing=True)


def create_app(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    install_global_tracing: bool = False,
) -> FastAPI:
    """The application; `tracer_provider` receives its spans (default: what the `OTEL_*`
    variables configure, possibly nothing)."""
    settings = settings or Settings()
    metrics = ApiMetrics()
    provider = tracer_provider or configure_tracing(install_global=install_global_tracing)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            wire(settings, tracer_provider=provider) as container,
            services(container) as built,
        ):
            dispatcher = burst_dispatcher(settings)
            dispatcher.start()
            app.state.api = api = ApiState(
                services=built,
                keys=ApiKeys(container.sessions),
                limiter=RateLimiter(
                    built.redis_cache,
                    rate_per_s=settings.rate_limit_per_s,
                    burst=settings.rate_limit_burst,
                    fail_open=settings.rate_limit_fail_open,
                ),
                metrics=metrics,
                dispatcher=dispatcher,
            )
            built.orchestrator.on_finish(lambda saga: metrics.count_saga_outcome(saga.state))
            if settings.api_recover_sagas:
                await _recover_sagas(built.orchestrator, 0.0)
            stop = asyncio.Event()
            refresher = asyncio.create_task(
                refresh_metrics(
                    api,
                    every_s=settings.metrics_refresh_s,
                    timeout_s=settings.readiness_check_timeout_s,
                )
            )
            stopped: list[asyncio.Task[None]] = []  # end when `stop` is set
            cancelled: list[asyncio.Task[None]] = [refresher]
            if settings.api_run_workers:
                stopped.append(asyncio.create_task(run_workers(container, stop)))
            if settings.api_recover_sagas:
                recovery = _recover_periodically(built.orchestrator, settings)
                cancelled.append(asyncio.create_task(recovery))
            try:
                yield
            finally:
                stop.set()
                for task in cancelled:
                    task.cancel()
                await asyncio.gather(*cancelled, *stopped, return_exceptions=True)
                await dispatcher.close(drain=False)
                if tracer_provider is None:
                    provider.shutdown()

    app = FastAPI(
        title="rustok-ref",
        version=__version__,
        summary="The RusToK reviewed architecture, in Python: commerce over tenants.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    document_problems(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(graphql.router)
    app.add_middleware(
        RequestMiddleware,
        tracer=provider.get_tracer("rustok_ref.api"),
        metrics=metrics,
        max_body_bytes=settings.api_max_body_bytes,
    )
    return app
