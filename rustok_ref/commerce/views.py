"""The product and order read views (CQRS), kept by projections on the stream consumers and
read by the API's list endpoints.

The product view copies the product's row whenever one of its events arrives, as
rustok-index's product indexer loads what it indexes (reference §8): the reference's product
events carry only the product's id. Reading the row gives the latest state whatever the
event, so redelivered or replayed events converge on it. The order view is built from the
order events' payloads alone (placed, lines, status changes, payment, cancellation), so a
rebuild from the outbox gives the same rows as incremental processing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal, select, update
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from rustok_ref.commerce.events import OrderLineAdded, OrderPaid
from rustok_ref.events.envelope import (
    EventEnvelope,
    OrderCancelled,
    OrderPlaced,
    OrderStatusChanged,
)
from rustok_ref.events.projections import Projection
from rustok_ref.storage.tables import order_view, product_view, products

_COPIED = ("tenant_id", "sku", "title", "price", "currency", "stock", "status", "version")


async def _copy_product(session: AsyncSession, envelope: EventEnvelope) -> None:
    source = select(
        products.c.id,
        *(products.c[name] for name in _COPIED),
        literal(envelope.occurred_at).label("updated_at"),
        literal(envelope.id, PG_UUID(as_uuid=True)).label("last_event_id"),
    ).where(products.c.id == envelope.aggregate_id)
    statement = pg_insert(product_view).from_select(
        ["product_id", *_COPIED, "updated_at", "last_event_id"], source
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[product_view.c.product_id],
            set_={
                name: statement.excluded[name] for name in (*_COPIED, "updated_at", "last_event_id")
            },
        )
    )


PRODUCT_VIEW = Projection(
    "product_view",
    product_view,
    dict.fromkeys(
        (
            "product.created",
            "product.updated",
            "product.published",
            "stock.reserved",
            "stock.released",
        ),
        _copy_product,
    ),
)
"""A product as its row stands after its latest event (stock included)."""


def _seen(envelope: EventEnvelope) -> dict[str, Any]:
    return {
        "updated_at": envelope.occurred_at,
        "version": envelope.aggregate_version,
        "last_event_id": envelope.id,
    }


async def _order_placed(session: AsyncSession, envelope: EventEnvelope) -> None:
    assert isinstance(envelope.payload, OrderPlaced)
    placed = envelope.payload
    statement = pg_insert(order_view).values(
        order_id=placed.order_id,
        tenant_id=envelope.tenant_id,
        customer_id=placed.customer_id,
        status="draft",
        total=placed.total,
        currency=placed.currency,
        placed_at=envelope.occurred_at,
        **_seen(envelope),
    )
    await session.execute(statement.on_conflict_do_nothing())


async def _update(session: AsyncSession, envelope: EventEnvelope, **values: Any) -> None:
    await session.execute(
        update(order_view)
        .where(order_view.c.order_id == envelope.aggregate_id)
        .values(**values, **_seen(envelope))
    )


async def _line_added(session: AsyncSession, envelope: EventEnvelope) -> None:
    assert isinstance(envelope.payload, OrderLineAdded)
    await _update(session, envelope, lines=envelope.payload.line)


async def _status_changed(session: AsyncSession, envelope: EventEnvelope) -> None:
    assert isinstance(envelope.payload, OrderStatusChanged)
    await _update(session, envelope, status=envelope.payload.new_status)


async def _paid(session: AsyncSession, envelope: EventEnvelope) -> None:
    assert isinstance(envelope.payload, OrderPaid)
    await _update(session, envelope, payment_id=envelope.payload.payment_id)


async def _cancelled(session: AsyncSession, envelope: EventEnvelope) -> None:
    assert isinstance(envelope.payload, OrderCancelled)
    await _update(session, envelope, cancel_reason=envelope.payload.reason)


ORDER_VIEW = Projection(
    "order_view",
    order_view,
    {
        "order.placed": _order_placed,
        "order.line_added": _line_added,
        "order.status_changed": _status_changed,
        "order.paid": _paid,
        "order.cancelled": _cancelled,
    },
)
"""An order as its events tell it: status, total, lines, payment, cancellation reason."""
