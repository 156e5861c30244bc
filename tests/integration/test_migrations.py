"""Alembic migrations on a fresh database, and row-level security on every tenant-owned table."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import ColumnElement, func, insert, literal, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import libpq_url
from rustok_ref.lab import infra
from rustok_ref.storage import DbRole, UnitOfWork, metadata, migrate, tenants
from rustok_ref.storage.tables import tenant_column

pytestmark = pytest.mark.integration


def test_upgrade_downgrade_upgrade_and_check_on_a_fresh_database(
    services: infra.Services,
) -> None:
    with infra.empty_database(services, "migrations") as url:
        migrate.upgrade(url)
        migrate.downgrade(url, "base")
        with psycopg.connect(libpq_url(url)) as conn:
            left = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            ).fetchall()
        assert left == [], "downgrade to base must leave no table behind"
        migrate.upgrade(url)
        migrate.check(url)  # raises when the metadata and the database differ


def test_every_table_declares_its_tenancy() -> None:
    for table in metadata.sorted_tables:
        tenancy = table.info.get("tenancy")
        assert tenancy in ("owned", "global"), f"{table.name} declares no tenancy in info"
        if tenancy == "global":
            assert "tenant_id" not in table.c, f"{table.name} has tenant_id but is global"


def test_tenant_owned_tables_force_row_level_security(run_ns: infra.RunNamespace) -> None:
    owned = [t for t in metadata.sorted_tables if t.info.get("tenancy") == "owned"]
    assert owned, "the metadata lists no tenant-owned table"
    with psycopg.connect(run_ns.database_url) as conn:
        for table in owned:
            row = conn.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
                (table.name,),
            ).fetchone()
            assert row == (True, True), f"{table.name}: ENABLE and FORCE ROW LEVEL SECURITY"
            policies = conn.execute(
                "SELECT qual, with_check FROM pg_policies WHERE tablename = %s", (table.name,)
            ).fetchall()
            assert policies, f"{table.name} has no policy"
            column = tenant_column(table)
            for qual, with_check in policies:
                for clause in (qual, with_check):
                    assert "app.tenant_id" in clause and column in clause, (table.name, clause)


def test_app_role_can_neither_bypass_rls_nor_act_as_superuser(
    run_ns: infra.RunNamespace,
) -> None:
    with psycopg.connect(run_ns.database_url) as conn:
        rows = {
            name: (superuser, bypass)
            for name, superuser, bypass in conn.execute(
                "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles "
                "WHERE rolname IN ('rustok_app', 'rustok_worker')"
            ).fetchall()
        }
    assert rows["rustok_app"] == (False, False)
    assert rows["rustok_worker"] == (False, True)


async def _add_tenant(sessions: async_sessionmaker[AsyncSession], slug: str) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        await uow.session.execute(insert(tenants).values(id=tenant_id, slug=slug, name=slug))
        await uow.commit()
    return tenant_id


async def test_a_request_transaction_sees_only_its_tenant(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    suffix = uuid.uuid4().hex[:8]
    a = await _add_tenant(sessions, f"a-{suffix}")
    b = await _add_tenant(sessions, f"b-{suffix}")

    async with UnitOfWork(sessions, tenant_id=a) as uow:
        seen = (await uow.session.execute(select(tenants.c.id))).scalars().all()
    assert seen == [a]

    async with UnitOfWork(sessions, tenant_id=None) as uow:
        assert (await uow.session.execute(select(tenants.c.id))).scalars().all() == []

    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        everyone = set((await uow.session.execute(select(tenants.c.id))).scalars().all())
    assert {a, b} <= everyone


async def test_a_request_transaction_cannot_write_another_tenants_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = uuid.uuid4()
    async with UnitOfWork(sessions, tenant_id=a) as uow:
        with pytest.raises(DBAPIError, match="row-level security"):
            await uow.session.execute(
                insert(tenants).values(id=uuid.uuid4(), slug=f"x-{a.hex[:8]}", name="x")
            )


async def test_role_and_tenant_do_not_leak_past_the_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = uuid.uuid4()
    async with UnitOfWork(sessions, tenant_id=a) as uow:
        role = (await uow.session.execute(select(_current("role")))).scalar_one()
        assert role == "rustok_app"
    async with sessions() as session:
        role = (await session.execute(select(_current("role")))).scalar_one()
        tenant = (await session.execute(select(_current("app.tenant_id")))).scalar_one()
    assert role == "none"
    assert tenant in (None, "")


async def test_unit_of_work_refuses_use_after_commit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with UnitOfWork(sessions, tenant_id=None) as uow:
        await uow.commit()
        with pytest.raises(RuntimeError, match="after commit"):
            _ = uow.session


def _current(setting: str) -> ColumnElement[str]:
    return func.current_setting(literal(setting), literal(True))
