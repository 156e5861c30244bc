"""One `Settings` object, read from `RUSTOK_*` environment variables (and a `.env` file).

Everything configurable lives here so `bootstrap.py` can build the whole object graph from
one value; nothing else reads the environment.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Backend = Literal["auto", "external", "containers", "embedded"]
DispatcherPolicy = Literal["block", "reject", "drop_oldest", "drop_newest"]


def async_database_url(url: str) -> str:
    """The SQLAlchemy URL for psycopg 3, whatever scheme the user gave (psycopg speaks both
    sync and async, so the same URL serves Alembic and the async engine)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r} (expected postgresql://user@host:port/db)")


def libpq_url(url: str) -> str:
    """The plain libpq URL (what psql and psycopg.connect take)."""
    return "postgresql://" + async_database_url(url)[len("postgresql+psycopg://") :]


class Settings(BaseSettings):
    """The service's settings. Defaults suit a developer machine; CI exports the URLs."""

    model_config = SettingsConfigDict(env_prefix="RUSTOK_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL of the run's database (libpq or SQLAlchemy form)."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL, e.g. redis://127.0.0.1:6379/0"
    )
    redis_prefix: str = Field(
        default="rustok:", description="Prefix of every Redis key, stream and channel of this run."
    )
    backend: Backend = "auto"
    require_services: bool = Field(
        default=False, description="Fail, never skip, when PostgreSQL or Redis is missing (CI)."
    )
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    service_name: str = "rustok-ref"

    # tenancy
    tenant_header: str = Field(default="X-Tenant-ID", description="Header naming the tenant.")
    default_tenant: str | None = Field(
        default=None, description="Identifier used when a request names no tenant (None: 400)."
    )
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description="Peers (CIDRs) whose X-Forwarded-Host and Forwarded headers are honoured.",
    )
    tenant_cache_capacity: int = Field(default=10_000, ge=1)
    tenant_cache_ttl_s: float = Field(default=300.0, gt=0)
    tenant_cache_tti_s: float = Field(default=180.0, gt=0)
    tenant_negative_ttl_s: float | None = Field(
        default=60.0, gt=0, description="TTL of a cached not-found; None caches only found ones."
    )

    # commerce
    payment_provider: str = Field(default="standin", description="Payment provider by name.")
    shipping_provider: str = Field(default="standin", description="Shipping provider by name.")
    saga_sync_wait: float = Field(
        default=2.0, ge=0, description="Seconds `pay` waits for its checkout saga to end."
    )

    # resilience and flags
    redis_breaker_timeout_s: float = Field(
        default=10.0, gt=0, description="How long the Redis breaker stays open before probing."
    )
    flag_cache_ttl_s: float = Field(default=30.0, gt=0, description="Feature flags cache TTL.")
    product_cache_ttl_s: float = Field(
        default=2.0, gt=0, description="How long `GET /products/{id}` answers from memory."
    )
    product_cache_capacity: int = Field(
        default=10_000, ge=1, description="Products the API process keeps in that cache."
    )

    # the API process
    api_max_body_bytes: int = Field(default=1 << 20, ge=1, description="Request body cap.")
    api_run_workers: bool = Field(
        default=True, description="Run the outbox relay and the read views in the API process."
    )
    api_recover_sagas: bool = Field(
        default=True,
        description="Finish or undo interrupted sagas when the API starts, and periodically.",
    )
    saga_recover_every_s: float = Field(
        default=10.0, gt=0, description="Recover sagas idle this long, checked this often."
    )
    tenant_filter: bool = Field(
        default=True,
        description="Test only: off drops the API's own tenant filter to show RLS alone isolates.",
    )
    rate_limit_per_s: float = Field(
        default=500.0, gt=0, description="Requests per second per tenant (token refill)."
    )
    rate_limit_burst: int = Field(default=1_000, ge=1, description="Token bucket size.")
    rate_limit_fail_open: bool = Field(
        default=True, description="Serve when Redis cannot count (a warning is counted)."
    )
    readiness_max_relay_lag_s: float = Field(
        default=30.0, gt=0, description="/readyz fails when the oldest unpublished event is older."
    )
    readiness_check_timeout_s: float = Field(
        default=1.0, gt=0, description="Each /readyz check fails when it takes longer."
    )
    metrics_refresh_s: float = Field(
        default=1.0, gt=0, description="How often the API refreshes its gauges."
    )
    dispatcher_capacity: int = Field(
        default=10_000, ge=1, description="Mailbox size of the API's in-process dispatcher."
    )
    dispatcher_policy: DispatcherPolicy = Field(
        default="reject", description="What that dispatcher does with an item when full."
    )
    graphql_max_depth: int = Field(default=8, ge=1)
    graphql_max_tokens: int = Field(default=2_000, ge=1, description="GraphQL complexity cap.")

    # test runs only: crash points are honoured only when test_hooks is on
    test_hooks: bool = Field(default=False, description="Allow test-only hooks (RUSTOK_CRASH_AT).")
    crash_at: str | None = Field(
        default=None, description="A crash point, e.g. relay:3 or checkout:<step>:before:execute."
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        return None if value is None else async_database_url(value)

    @field_validator("redis_prefix")
    @classmethod
    def _prefix_ends_with_colon(cls, value: str) -> str:
        if not value or not value.endswith(":"):
            raise ValueError("redis_prefix must be non-empty and end with ':'")
        return value
