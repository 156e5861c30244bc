"""Shared fixtures: real PostgreSQL and Redis for the session, a private run namespace,
hypothesis profiles, and the rule that a skip is a failure when CI requires the services."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.lab import infra
from rustok_ref.storage import create_engine, create_sessionmaker

settings.register_profile(
    "dev",
    max_examples=50,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=50,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REQUIRE_SERVICES = os.environ.get("RUSTOK_REQUIRE_SERVICES", "") not in ("", "0", "false")
# The only skips CI accepts: tests that need a Docker engine, which this machine kind lacks.
ALLOWED_SKIP_MARKERS = frozenset({"docker"})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    allowed = any(item.get_closest_marker(m) for m in ALLOWED_SKIP_MARKERS)
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail") and not allowed:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped while RUSTOK_REQUIRE_SERVICES=1 (only {sorted(ALLOWED_SKIP_MARKERS)} "
            f"tests may skip): {report.longrepr}"
        )


@pytest.fixture(scope="session")
def services() -> Iterator[infra.Services]:
    """The servers of this session: external when RUSTOK_* URLs are set, else auto."""
    env = Settings()
    try:
        with infra.provision(env.backend, env) as found:
            yield found
    except infra.InfraError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"RUSTOK_REQUIRE_SERVICES=1 and no services: {exc}")
        pytest.skip(f"no PostgreSQL/Redis: {exc}")


@pytest.fixture(scope="session")
def run_ns(services: infra.Services) -> Iterator[infra.RunNamespace]:
    """This session's own database (from the migrated template) and Redis prefix."""
    with infra.run_namespace(services, "test") as namespace:
        yield namespace


@pytest.fixture(scope="session")
def app_settings(run_ns: infra.RunNamespace) -> Settings:
    return Settings(
        database_url=run_ns.database_url,
        redis_url=run_ns.redis_url,
        redis_prefix=run_ns.redis_prefix,
        backend="external",
    )


@pytest.fixture
async def engine(app_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine per test: asyncpg-style pools are bound to the test's event loop."""
    created = create_engine(app_settings)
    yield created
    await created.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def redis_client(app_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    assert app_settings.redis_url is not None
    client = aioredis.Redis.from_url(app_settings.redis_url)
    yield client
    await client.aclose()
