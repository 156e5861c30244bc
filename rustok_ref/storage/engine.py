"""The async engine and session factory (SQLAlchemy 2 on psycopg 3)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from rustok_ref.config import Settings, async_database_url


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for the run's database; raises if no database URL is configured."""
    if settings.database_url is None:
        raise ValueError("RUSTOK_DATABASE_URL is not set; `rustok-ref infra up` prints one")
    return create_async_engine(
        async_database_url(settings.database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args={"options": f"-c statement_timeout={settings.db_statement_timeout_ms}"},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit (events are built from them)."""
    return async_sessionmaker(engine, expire_on_commit=False)
