"""Tenant administration and tenant loading: the only code that writes or reads the `tenants`
table for the tenant caches.

Each change runs in one unit of work as `rustok_worker` (tenant administration is
cross-tenant), bumps the row's `version` optimistically (the UPDATE matches the version it
read, so a concurrent change makes it a Conflict, never a lost update), and only after the
commit publishes an invalidation of every identifier the tenant had or has: its uuid, its
slug (old and new on a rename), its domain (old and new on a change). Nothing is published
when the transaction rolls back. A publish that fails after the commit raises: the change
stands, caches may serve the old tenant until their TTL, and repeating the call is safe.

The loaders serve the caches: `load_tenant` (async) and `load_tenant_sync` (for
`get_or_load_sync`; `sqlalchemy.create_engine(async_database_url(url))` gives a sync engine
on psycopg 3, owned by the caller). Both run as `rustok_worker`, since a lookup by slug or
host cannot know the tenant yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, Executable, Result, Row, Select, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.errors import ConflictError, TenantNotFoundError
from rustok_ref.storage import DbRole, UnitOfWork, tenants
from rustok_ref.tenancy.identifiers import validate_host, validate_slug
from rustok_ref.tenancy.invalidation import InvalidationPublisher
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier

_AS_WORKER = text("SELECT set_config('role', :role, true)")
_UNIQUE_FIELDS = {"uq_tenants_slug": "slug", "uq_tenants_domain": "domain"}


def identifiers_of(tenant: Tenant) -> set[TenantIdentifier]:
    """Every identifier a request can name `tenant` by."""
    found = {
        TenantIdentifier(IdentifierKind.UUID, str(tenant.id)),
        TenantIdentifier(IdentifierKind.SLUG, tenant.slug),
    }
    if tenant.domain is not None:
        found.add(TenantIdentifier(IdentifierKind.HOST, tenant.domain))
    return found


def _lookup(identifier: TenantIdentifier) -> Select[Any]:
    column = {
        IdentifierKind.UUID: tenants.c.id,
        IdentifierKind.SLUG: tenants.c.slug,
        IdentifierKind.HOST: tenants.c.domain,
    }[identifier.kind]
    value: object = (
        uuid.UUID(identifier.value)
        if identifier.kind is IdentifierKind.UUID
        else (identifier.value)
    )
    return select(tenants).where(column == value)


def _tenant(row: Row[Any]) -> Tenant:
    return Tenant(
        id=row.id,
        slug=row.slug,
        name=row.name,
        domain=row.domain,
        settings=row.settings,
        is_active=row.is_active,
        version=row.version,
    )


async def load_tenant(
    sessions: async_sessionmaker[AsyncSession], identifier: TenantIdentifier
) -> Tenant | None:
    """The tenant with that identifier, or None (a `TenantLoader` once `sessions` is bound)."""
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        row = (await uow.session.execute(_lookup(identifier))).first()
    return None if row is None else _tenant(row)


def load_tenant_sync(engine: Engine, identifier: TenantIdentifier) -> Tenant | None:
    """`load_tenant` on a sync engine (a `SyncTenantLoader` once `engine` is bound)."""
    with engine.begin() as connection:
        connection.execute(_AS_WORKER, {"role": DbRole.WORKER.value})
        row = connection.execute(_lookup(identifier)).first()
    return None if row is None else _tenant(row)


class TenantRepository:
    """Create, rename, disable/enable and re-domain tenants; each change is published to
    the tenant caches after it commits. `expected_version` makes a change conditional on
    the version the caller saw."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], publisher: InvalidationPublisher
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher

    async def create(
        self,
        slug: str,
        name: str,
        *,
        domain: str | None = None,
        settings: Mapping[str, Any] | None = None,
        tenant_id: uuid.UUID | None = None,
    ) -> Tenant:
        values = {
            "id": tenant_id or uuid.uuid4(),
            "slug": validate_slug(slug),
            "name": name,
            "domain": None if domain is None else validate_host(domain),
            "settings": dict(settings or {}),
        }
        async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            statement = insert(tenants).values(values).returning(*tenants.c)
            created = _tenant((await _execute(uow, statement)).one())
            await uow.commit()
        # A cached not-found of the new slug or domain must go too.
        await self._publisher.publish(identifiers_of(created))
        return created

    async def rename(
        self,
        tenant_id: uuid.UUID,
        slug: str,
        *,
        name: str | None = None,
        expected_version: int | None = None,
    ) -> Tenant:
        values: dict[str, Any] = {"slug": validate_slug(slug)}
        if name is not None:
            values["name"] = name
        return await self._change(tenant_id, values, expected_version)

    async def disable(self, tenant_id: uuid.UUID, *, expected_version: int | None = None) -> Tenant:
        return await self._change(tenant_id, {"is_active": False}, expected_version)

    async def enable(self, tenant_id: uuid.UUID, *, expected_version: int | None = None) -> Tenant:
        return await self._change(tenant_id, {"is_active": True}, expected_version)

    async def change_domain(
        self, tenant_id: uuid.UUID, domain: str | None, *, expected_version: int | None = None
    ) -> Tenant:
        value = None if domain is None else validate_host(domain)
        return await self._change(tenant_id, {"domain": value}, expected_version)

    async def _change(
        self, tenant_id: uuid.UUID, values: dict[str, Any], expected_version: int | None
    ) -> Tenant:
        async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            read = await uow.session.execute(select(tenants).where(tenants.c.id == tenant_id))
            row = read.first()
            if row is None:
                raise TenantNotFoundError(f"no tenant with id {tenant_id}")
            before = _tenant(row)
            version = before.version if expected_version is None else expected_version
            statement = (
                update(tenants)
                .where(tenants.c.id == tenant_id, tenants.c.version == version)
                .values({**values, "version": tenants.c.version + 1, "updated_at": func.now()})
                .returning(*tenants.c)
            )
            changed = (await _execute(uow, statement)).first()
            if changed is None:
                raise ConflictError(
                    f"tenant {tenant_id} is at version {before.version}, not {version}"
                    if expected_version is not None
                    else f"tenant {tenant_id} was changed concurrently; try again"
                )
            after = _tenant(changed)
            await uow.commit()
        await self._publisher.publish(identifiers_of(before) | identifiers_of(after))
        return after


async def _execute(uow: UnitOfWork, statement: Executable) -> Result[Any]:
    """Execute, turning a unique violation (a slug or domain taken) into a Conflict."""
    try:
        return await uow.session.execute(statement)
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        field = _UNIQUE_FIELDS.get(constraint or "")
        if field is None:
            raise
        raise ConflictError(f"another tenant already has this {field}") from exc
