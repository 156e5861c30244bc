"""What row-level security costs per transaction: the unit of work's role-and-tenant set-up
against a plain session doing the same query."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.storage import UnitOfWork, tenants

pytestmark = pytest.mark.integration


async def test_unit_of_work_overhead_against_a_plain_session(
    paired, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = uuid.uuid4()
    query = select(tenants.c.id).where(tenants.c.id == tenant)

    async def with_unit_of_work() -> None:
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            await uow.session.execute(query)

    async def plain_session() -> None:
        async with sessions() as session, session.begin():
            await session.execute(text("SELECT 1"))
            await session.execute(query)

    await paired.async_(
        with_unit_of_work,
        plain_session,
        labels=("UnitOfWork", "session + 2 statements"),
        rounds=15,
        iterations=50,
    )
