"""A real API server for tests: `rustok-ref serve` in a subprocess on a free loopback port,
over the session's database and Redis prefix, plus tenants with keys of every role.

Import with `from api_support import ...` (tests/ is on the path). The server is a real
uvicorn process, so what a test sees is what a client sees; coverage follows it through
COVERAGE_PROCESS_START like every other subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.api.auth import ApiKeys, Role
from rustok_ref.bootstrap import services, wire
from rustok_ref.config import Settings
from rustok_ref.features.model import Feature
from rustok_ref.lab.load_processes import (  # noqa: F401 (re-exported for tests)
    STARTUP_TIMEOUT_S,
    ManagedProcess,
    free_port,
    start_api,
)
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import orders, products

T = TypeVar("T")

PROBLEM = "application/problem+json"

LIVENESS_S = 30.0  # bound for the relay and the read views, a background checkout, a flag


def eventually(probe: Callable[[], T], what: str) -> T:
    """`probe()` once it is truthy, polled up to the liveness bound."""
    deadline = time.monotonic() + LIVENESS_S
    while not (value := probe()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)
    return value


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metric_samples(exposition: str) -> Samples:
    """Every sample of a /metrics text, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def sample_value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def read_metric(client: httpx.Client, name: str, **labels: str) -> float | None:
    """One sample of the server's /metrics now (None when it is not exported)."""
    return sample_value(metric_samples(client.get("/metrics").text), name, **labels)


def settings_env(settings: Settings) -> dict[str, str]:
    """The RUSTOK_* variables that give a subprocess the same database, Redis and prefix."""
    assert settings.database_url is not None and settings.redis_url is not None
    return {
        "RUSTOK_DATABASE_URL": settings.database_url,
        "RUSTOK_REDIS_URL": settings.redis_url,
        "RUSTOK_REDIS_PREFIX": settings.redis_prefix,
        "RUSTOK_BACKEND": "external",
    }


@dataclass
class ApiServer:
    base_url: str
    process: ManagedProcess

    def client(self, tenant: str | None = None, key: str | None = None) -> httpx.Client:
        headers = {}
        if tenant is not None:
            headers["X-Tenant-ID"] = tenant
        if key is not None:
            headers["X-API-Key"] = key
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0)

    def log_text(self) -> str:
        return self.process.log.read_text(errors="replace")


@contextlib.contextmanager
def run_server(
    settings: Settings,
    log_dir: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> Iterator[ApiServer]:
    """Start `rustok-ref serve` (the load driver's `start_api`), wait for /healthz, yield,
    then stop it and every worker it forked."""
    api, url = start_api({**settings_env(settings), **(env or {})}, log_dir, workers=workers)
    try:
        yield ApiServer(url, api)
    finally:
        api.stop()


@dataclass(frozen=True)
class TenantKeys:
    """A tenant and one key of each role."""

    id: uuid.UUID
    slug: str
    keys: Mapping[Role, str]

    @property
    def admin(self) -> str:
        return self.keys[Role.ADMIN]

    @property
    def staff(self) -> str:
        return self.keys[Role.STAFF]

    @property
    def customer(self) -> str:
        return self.keys[Role.CUSTOMER]


def make_tenant(
    settings: Settings, name: str = "Shop", *, features: Sequence[Feature] = (Feature.COMMERCE,)
) -> TenantKeys:
    """A new tenant with a unique slug, a key per role and `features` switched on (its own
    event loop: call it from sync fixtures of any scope)."""

    async def create() -> TenantKeys:
        async with wire(settings) as container, services(container) as built:
            slug = f"t-{uuid.uuid4().hex[:12]}"
            tenant = await built.tenants.create(slug, name)
            api_keys = ApiKeys(container.sessions)
            keys = {role: (await api_keys.create(tenant.id, role)).token for role in Role}
            for feature in features:
                await built.flag_store.set(tenant.id, feature, enabled=True)
            return TenantKeys(tenant.id, slug, keys)

    return asyncio.run(create())


def expect_problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The problem body of `answer`, once its status and content type are the expected ones."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM, answer.headers
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    return body


async def tenant_counts(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> tuple[int, int]:
    """(products, orders) of the tenant, read as the worker role past every cache and view."""
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        counted = []
        for table in (products, orders):
            query = select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
            counted.append((await uow.session.execute(query)).scalar_one())
    return counted[0], counted[1]


def product_body(**changes: object) -> dict[str, object]:
    """A valid create-product body with `changes` applied (a unique SKU each call)."""
    body: dict[str, object] = {
        "sku": f"sku-{uuid.uuid4().hex[:10]}",
        "title": "Kettle",
        "price": {"amount": 2599, "currency": "EUR"},
        "stock": 5,
    }
    body.update(changes)
    return body


def create_product(client: httpx.Client, *, publish: bool = False, **changes: object) -> str:
    """A new product of the client's tenant (`product_body(**changes)`), published if asked:
    its id."""
    created = client.post("/products", json=product_body(**changes))
    assert created.status_code == 201, created.text
    product_id: str = created.json()["id"]
    if publish:
        assert client.post(f"/products/{product_id}/publish").status_code == 200
    return product_id
