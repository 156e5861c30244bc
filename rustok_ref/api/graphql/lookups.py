"""One product or order by id from the read index (the lists are `api.readindex`'s).

Queries never read the write tables (the review's A2), so `product(id)` answers what the
index has: a product created a moment ago may not be there yet, and another tenant's never
is (the tenant filter, and row-level security under it).
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import RowMapping, Table, select

from rustok_ref.api.context import RequestContext
from rustok_ref.api.readindex import list_scope
from rustok_ref.storage.tables import order_view, product_view

__all__ = ["indexed_order", "indexed_product"]


async def _one(caller: RequestContext, table: Table, row_id: UUID) -> RowMapping | None:
    key = table.primary_key.columns.values()[0]
    query = select(table).where(key == row_id)
    tenant_id = list_scope(caller)
    if tenant_id is not None:
        query = query.where(table.c.tenant_id == tenant_id)
    async with caller.uow() as uow:
        return (await uow.session.execute(query)).mappings().one_or_none()


async def indexed_product(caller: RequestContext, product_id: UUID) -> RowMapping | None:
    return await _one(caller, product_view, product_id)


async def indexed_order(caller: RequestContext, order_id: UUID) -> RowMapping | None:
    return await _one(caller, order_view, order_id)
