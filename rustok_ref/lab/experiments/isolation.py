"""Tenant isolation (the review's "multi-tenancy with isolation") measured in the database.

For every tenant-owned table (`tables.TENANT_OWNED`), two counts: the rows of each seeded
tenant as a cross-tenant worker sees them (`rustok_worker`, BYPASSRLS: proof the table was
seeded), and the rows of any *other* tenant that a transaction as `rustok_app` with one
tenant set can read. The query asks for the other tenants' rows outright, with no tenant
filter of the application's own, so only row-level security stands between them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import metadata, tenant_column


def owned_tables() -> list[Table]:
    """Every table the metadata marks tenant-owned, in dependency order."""
    return [table for table in metadata.sorted_tables if table.info.get("tenancy") == "owned"]


@dataclass(frozen=True)
class TableIsolation:
    """One table: rows per seeded tenant (worker's view) and foreign rows each one saw."""

    table: str
    seeded: tuple[int, ...]
    foreign_seen: tuple[int, ...]

    @property
    def seeded_for_all(self) -> bool:
        """Every tenant has a row here, so a leak could have shown."""
        return all(self.seeded)


async def table_isolation(
    sessions: async_sessionmaker[AsyncSession], tenants: Sequence[uuid.UUID]
) -> list[TableIsolation]:
    """The counts for every tenant-owned table (see the module docstring)."""
    found = []
    for table in owned_tables():
        column = table.c[tenant_column(table)]
        seeded = []
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            for tenant in tenants:
                query = select(func.count()).select_from(table).where(column == tenant)
                seeded.append(int((await uow.session.execute(query)).scalar_one()))
        foreign = []
        for tenant in tenants:
            async with UnitOfWork(sessions, tenant_id=tenant) as uow:
                query = select(func.count()).select_from(table).where(column != tenant)
                foreign.append(int((await uow.session.execute(query)).scalar_one()))
        found.append(TableIsolation(table.name, tuple(seeded), tuple(foreign)))
    return found


def foreign_rows(results: Sequence[TableIsolation]) -> int:
    """Rows of another tenant read under row-level security, over every table and tenant."""
    return sum(sum(result.foreign_seen) for result in results)
