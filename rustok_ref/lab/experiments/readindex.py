"""CQRS-lite (the review's state table): does the read index hold every write-model change?

`index_agreement` compares, for the given tenants, each write-model product and order with
its read-index row (product_view, order_view) on the columns both carry; `indexed_percent`
is the share `shop.drain_until` waits on while the relay and the projections run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import order_view, orders, product_view, products

# The columns both sides carry, compared as they are.
_PRODUCT_COLUMNS = ("sku", "title", "price", "currency", "stock", "status", "version")
_ORDER_COLUMNS = ("status", "total", "currency", "customer_id", "payment_id", "cancel_reason")


@dataclass(frozen=True)
class Agreement:
    matched: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100 * self.matched / self.total


async def index_agreement(
    sessions: async_sessionmaker[AsyncSession], tenants: Sequence[uuid.UUID]
) -> Agreement:
    """Write-model products and orders of `tenants` whose index row agrees (read as the
    cross-tenant worker, as the projections themselves read)."""
    matched = total = 0
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        for source, index, key, columns in (
            (products, product_view, "product_id", _PRODUCT_COLUMNS),
            (orders, order_view, "order_id", _ORDER_COLUMNS),
        ):
            written = await _rows(uow.session, source, "id", tenants, columns)
            indexed = await _rows(uow.session, index, key, tenants, columns)
            total += len(written)
            matched += sum(indexed.get(row_id) == values for row_id, values in written.items())
    return Agreement(matched, total)


async def indexed_percent(
    sessions: async_sessionmaker[AsyncSession], tenants: Sequence[uuid.UUID]
) -> float:
    """`index_agreement` as the percentage `shop.drain_until` waits on."""
    return (await index_agreement(sessions, tenants)).percent


async def _rows(
    session: AsyncSession,
    table: Table,
    key: str,
    tenants: Sequence[uuid.UUID],
    columns: Sequence[str],
) -> dict[Any, tuple[Any, ...]]:
    query = select(table.c[key], *(table.c[c] for c in columns)).where(
        table.c.tenant_id.in_(tenants)
    )
    return {row[0]: tuple(row[1:]) for row in (await session.execute(query)).all()}
