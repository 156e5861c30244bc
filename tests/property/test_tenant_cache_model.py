"""The recommended cache against a model, on the real database: any sequence of lookups
(found and unknown, by slug and uuid), renames (each followed by its invalidation),
invalidations and clock jumps gives the database's answer, loads exactly when the model says
an entry is missing or expired (TTL, TTI, negative TTL), and keeps exact statistics."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
import sqlalchemy
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, insert, update

from rustok_ref.config import Settings, async_database_url
from rustok_ref.storage import tenants
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier
from rustok_ref.tenancy.repository import load_tenant_sync

pytestmark = pytest.mark.integration

TTL, TTI, NEGATIVE_TTL = 300.0, 120.0, 60.0
TENANTS = 3
UNKNOWN = ("nobody-a", "nobody-b")
# Time between steps: none, or just before or at each expiry (TTL, TTI, negative TTL).
LATER = st.sampled_from([0.0, 1.0, 59.9, 60.0, 119.9, 120.0, 299.9, 300.0])


@dataclass
class Expected:
    """The model's entry: what the cache holds for a key and until when."""

    tenant: Tenant | None
    expires_at: float
    idle_until: float


@dataclass
class Database:
    """The rows the test owns, with their current slugs."""

    engine: Engine
    ids: list[uuid.UUID]
    slugs: dict[uuid.UUID, str] = field(default_factory=dict)
    renames: int = 0


class CacheModel(RuleBasedStateMachine):
    database: Database  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.loads = 0
        self.evictions = 0
        self.model: dict[TenantIdentifier, Expected] = {}

        def load(identifier: TenantIdentifier) -> Tenant | None:
            self.loads += 1
            return load_tenant_sync(self.database.engine, identifier)

        self.cache = TenantCache(
            sync_loader=load, ttl=TTL, tti=TTI, negative_ttl=NEGATIVE_TTL, clock=lambda: self.now
        )

    keys = Bundle("keys")

    @initialize(target=keys)
    def identifiers(self) -> object:
        found = [TenantIdentifier(IdentifierKind.UUID, str(i)) for i in self.database.ids]
        unknown = [
            TenantIdentifier(IdentifierKind.SLUG, f"{slug}-{self.database.ids[0].hex[:8]}")
            for slug in UNKNOWN
        ]
        return multiple(*found, *unknown)

    def truth(self, identifier: TenantIdentifier) -> Tenant | None:
        return load_tenant_sync(self.database.engine, identifier)

    @rule(identifier=keys, later=LATER)
    def get(self, identifier: TenantIdentifier, later: float) -> None:
        self._check_get(identifier, later)

    @rule(index=st.integers(0, TENANTS - 1), later=LATER)
    def get_by_slug(self, index: int, later: float) -> None:
        tenant_id = self.database.ids[index]
        slug = self.database.slugs[tenant_id]
        self._check_get(TenantIdentifier(IdentifierKind.SLUG, slug), later)

    def _check_get(self, identifier: TenantIdentifier, later: float) -> None:
        """`later` seconds on, look `identifier` up."""
        self.now += later
        expected = self.model.get(identifier)
        fresh = expected is not None and self.now < min(expected.expires_at, expected.idle_until)
        loads_before = self.loads
        got = self.cache.get_or_load_sync(identifier)
        assert got == self.truth(identifier)
        assert self.loads - loads_before == (0 if fresh else 1)
        if fresh:
            assert expected is not None
            expected.idle_until = self.now + TTI
            return
        if expected is not None:
            self.evictions += 1  # found expired
        ttl = TTL if got is not None else NEGATIVE_TTL
        self.model[identifier] = Expected(got, self.now + ttl, self.now + TTI)

    @rule(index=st.integers(0, TENANTS - 1))
    def rename(self, index: int) -> None:
        """A rename as the repository does it: commit, then invalidate every identifier."""
        database = self.database
        tenant_id = database.ids[index]
        old = database.slugs[tenant_id]
        database.renames += 1
        new = f"{old.split('~')[0]}~{database.renames}"
        with database.engine.begin() as connection:
            connection.execute(update(tenants).where(tenants.c.id == tenant_id).values(slug=new))
        database.slugs[tenant_id] = new
        for identifier in (
            TenantIdentifier(IdentifierKind.UUID, str(tenant_id)),
            TenantIdentifier(IdentifierKind.SLUG, old),
            TenantIdentifier(IdentifierKind.SLUG, new),
        ):
            self.cache.invalidate(identifier)
            self.model.pop(identifier, None)

    @rule(identifier=keys)
    def invalidate(self, identifier: TenantIdentifier) -> None:
        self.cache.invalidate(identifier)
        self.model.pop(identifier, None)

    @rule()
    def invalidate_all(self) -> None:
        self.cache.invalidate_all()
        self.model.clear()

    @invariant()
    def statistics_are_exact(self) -> None:
        stats = self.cache.stats()
        assert stats.request_count == stats.hit_count + stats.miss_count
        assert stats.miss_count == stats.load_success_count == self.loads
        assert stats.eviction_count == self.evictions
        assert stats.coalesced_wait_count == 0


@pytest.fixture
def database(app_settings: Settings) -> Database:
    assert app_settings.database_url is not None
    engine = sqlalchemy.create_engine(async_database_url(app_settings.database_url))
    ids = [uuid.uuid4() for _ in range(TENANTS)]
    slugs = {tenant_id: f"m-{tenant_id.hex[:12]}" for tenant_id in ids}
    with engine.begin() as connection:
        connection.execute(
            insert(tenants),
            [{"id": i, "slug": s, "name": f"Tenant {s}"} for i, s in slugs.items()],
        )
    return Database(engine, ids, slugs)


def test_the_cache_agrees_with_its_model(database: Database) -> None:
    class Bound(CacheModel):
        pass

    Bound.database = database
    try:
        run_state_machine_as_test(Bound, settings=settings(max_examples=20))
    finally:
        database.engine.dispose()
