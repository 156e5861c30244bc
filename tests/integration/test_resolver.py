"""The tenant resolver against the real database: found, unknown, disabled, and every attack
identifier of the reference refused with a Validation error before any query is sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.errors import TenantDisabledError, TenantNotFoundError, ValidationError
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.storage import DbRole, UnitOfWork, tenants
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier
from rustok_ref.tenancy.resolver import TenantResolver

pytestmark = pytest.mark.integration

ATTACKS = {
    "sql-drop": "'; DROP TABLE--",
    "sql-or": "1' OR '1'='1",
    "sql-comment": "admin'--",
    "xss-script": "<script>alert(1)</script>",
    "xss-javascript": "javascript:alert(1)",
    "xss-img": "<img src=x>",
    "traversal-unix": "../../../etc/passwd",
    "traversal-windows": "..\\windows\\system32",
    "overlong-10kB": "a" * 10_240,
    "overlong-host-10kB": "a." * 5_120 + "com",
    "non-ascii-latin": "tenant-\u00f1",
    "non-ascii-kelvin": "\u212aacme",
    "non-ascii-fullwidth": "\uff41\uff43\uff4d\uff45",
    "non-ascii-cjk": "\u79df\u6237",
    "control-nul": "\x00",
    "control-fs": "\x1c",
    "control-inside": "ac\x00me",
    "empty": "",
}

_COLUMNS = {
    IdentifierKind.UUID: tenants.c.id,
    IdentifierKind.SLUG: tenants.c.slug,
    IdentifierKind.HOST: tenants.c.domain,
}


async def load_tenant(
    sessions: async_sessionmaker[AsyncSession], identifier: TenantIdentifier
) -> Tenant | None:
    """One query, as the cross-tenant worker role (a lookup by slug or host has no tenant)."""
    value: object = identifier.value
    if identifier.kind is IdentifierKind.UUID:
        value = uuid.UUID(identifier.value)
    query = select(tenants).where(_COLUMNS[identifier.kind] == value)
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        row = (await uow.session.execute(query)).mappings().one_or_none()
    if row is None:
        return None
    return Tenant(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        domain=row["domain"],
        settings=row["settings"],
        is_active=row["is_active"],
        version=row["version"],
    )


@dataclass
class UncachedLookup:
    """The `TenantLookup` port with no cache: every call is a query, and is counted."""

    sessions: async_sessionmaker[AsyncSession]
    loads: int = 0

    async def get_or_load(self, identifier: TenantIdentifier) -> Tenant | None:
        self.loads += 1
        return await load_tenant(self.sessions, identifier)


async def create_tenant(sessions: async_sessionmaker[AsyncSession], *, active: bool) -> Tenant:
    slug = f"shop-{uuid.uuid4().hex[:12]}"
    tenant = Tenant(id=uuid.uuid4(), slug=slug, name=slug.title(), domain=f"{slug}.example.test")
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        await uow.session.execute(
            insert(tenants).values(
                id=tenant.id,
                slug=tenant.slug,
                name=tenant.name,
                domain=tenant.domain,
                is_active=active,
            )
        )
        await uow.commit()
    return tenant


@pytest.fixture
def lookup(sessions: async_sessionmaker[AsyncSession]) -> UncachedLookup:
    return UncachedLookup(sessions)


@pytest.fixture
def resolver(lookup: UncachedLookup, app_settings: Settings) -> TenantResolver:
    settings = app_settings.model_copy(update={"default_tenant": None, "trusted_proxies": []})
    return TenantResolver(lookup, settings)


@pytest.fixture
def trips(engine: AsyncEngine) -> RoundTrips:
    counter = RoundTrips()
    counter.watch_engine(engine)
    return counter


async def test_a_tenant_is_found_by_slug_uuid_and_host(
    sessions: async_sessionmaker[AsyncSession], resolver: TenantResolver, trips: RoundTrips
) -> None:
    tenant = await create_tenant(sessions, active=True)
    trips.reset()
    for headers in (
        {"X-Tenant-ID": tenant.slug.upper()},
        {"X-Tenant-ID": str(tenant.id).upper()},
        {"Host": f"{tenant.domain}:8443"},
    ):
        found = await resolver.resolve(headers, peer="127.0.0.1")
        assert (found.id, found.slug, found.domain, found.is_active) == (
            tenant.id,
            tenant.slug,
            tenant.domain,
            True,
        )
    assert trips.database == 6, "each lookup is the unit of work's set-up plus one SELECT"


async def test_an_unknown_tenant_is_not_found(
    resolver: TenantResolver, lookup: UncachedLookup
) -> None:
    with pytest.raises(TenantNotFoundError) as caught:
        await resolver.resolve({"X-Tenant-ID": "no-such-shop"}, peer=None)
    assert caught.value.status == 404
    assert lookup.loads == 1


async def test_a_disabled_tenant_is_refused(
    sessions: async_sessionmaker[AsyncSession], resolver: TenantResolver
) -> None:
    """Fix [D]: the real middleware never checks `is_active` and serves disabled tenants."""
    tenant = await create_tenant(sessions, active=False)
    with pytest.raises(TenantDisabledError) as caught:
        await resolver.resolve({"X-Tenant-ID": tenant.slug}, peer=None)
    assert caught.value.status == 403


@pytest.mark.parametrize("header", ["X-Tenant-ID", "Host"])
@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
async def test_an_attack_identifier_is_refused_before_any_query(
    resolver: TenantResolver,
    lookup: UncachedLookup,
    trips: RoundTrips,
    header: str,
    attack: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await resolver.resolve({header: attack}, peer="127.0.0.1")
    assert caught.value.status == 400
    assert lookup.loads == 0
    assert trips.database == 0
