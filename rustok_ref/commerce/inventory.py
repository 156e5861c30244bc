"""Stock held by checkouts: reserved all or nothing under a step's idempotency key, released
at most once.

A reservation takes each line's quantity with a guarded decrement (`stock >= quantity`), so
stock can never go negative, however many checkouts race for the last items (the column's
CHECK would refuse it anyway); products are locked in id order, so two checkouts of the same
products cannot deadlock. The rows it writes, keyed by the reserving call's idempotency key,
are what a release finds: releasing a key that never reserved anything is a no-op, and a
row released once is never added back twice. Events: stock.reserved and stock.released, on
the product's stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from uuid import UUID

from opentelemetry import trace
from sqlalchemy import insert, update

from rustok_ref.commerce.events import StockReleased, StockReserved
from rustok_ref.commerce.recording import claim_effect, publish, tenant_of
from rustok_ref.errors import ConflictError
from rustok_ref.events.envelope import EventPayload
from rustok_ref.storage.tables import products, stock_reservations
from rustok_ref.storage.unit_of_work import UnitOfWork

tracer = trace.get_tracer(__name__)


async def reserve_stock(
    uow: UnitOfWork, *, key: str, order_id: UUID, lines: Iterable[tuple[UUID, int]]
) -> bool:
    """Take every line's quantity, or none (ConflictError naming the product that is short:
    the caller's transaction must then roll back). False when `key` took it already."""
    tenant_id = tenant_of(uow)
    ids = {"tenant_id": str(tenant_id), "order_id": str(order_id)}
    with tracer.start_as_current_span("inventory.reserve", attributes=ids) as span:
        if not await claim_effect(uow, key):
            return False
        wanted: Counter[UUID] = Counter()
        for product_id, quantity in lines:
            wanted[product_id] += quantity
        span.set_attribute("product_id", [str(product_id) for product_id in sorted(wanted)])
        events: list[EventPayload] = []
        for product_id, quantity in sorted(wanted.items()):
            remaining = await uow.session.scalar(
                update(products)
                .where(products.c.id == product_id, products.c.stock >= quantity)
                .values(stock=products.c.stock - quantity)
                .returning(products.c.stock)
            )
            if remaining is None:
                raise ConflictError(
                    f"insufficient stock of product {product_id}: {quantity} wanted",
                    extra={"product_id": str(product_id), "wanted": quantity},
                )
            events.append(
                StockReserved(
                    product_id=product_id, order_id=order_id, quantity=quantity, remaining=remaining
                )
            )
        await uow.session.execute(
            insert(stock_reservations),
            [
                {
                    "reserve_key": key,
                    "product_id": product_id,
                    "tenant_id": tenant_id,
                    "order_id": order_id,
                    "quantity": quantity,
                }
                for product_id, quantity in wanted.items()
            ],
        )
        await publish(uow, tenant_id, events)
        return True


async def release_stock(uow: UnitOfWork, *, reserve_key: str) -> int:
    """Give back what `reserve_key` reserved and is still held; the items given back."""
    with tracer.start_as_current_span(
        "inventory.release",
        attributes={"tenant_id": str(uow.tenant_id), "reserve_key": reserve_key},
    ):
        tenant_id = tenant_of(uow)
        held = (
            await uow.session.execute(
                update(stock_reservations)
                .where(
                    stock_reservations.c.reserve_key == reserve_key,
                    stock_reservations.c.released.is_(False),
                )
                .values(released=True)
                .returning(
                    stock_reservations.c.product_id,
                    stock_reservations.c.order_id,
                    stock_reservations.c.quantity,
                )
            )
        ).all()
        events: list[EventPayload] = []
        for product_id, order_id, quantity in sorted(held):
            remaining = await uow.session.scalar(
                update(products)
                .where(products.c.id == product_id)
                .values(stock=products.c.stock + quantity)
                .returning(products.c.stock)
            )
            assert remaining is not None  # the reservation's foreign key keeps the product
            events.append(
                StockReleased(
                    product_id=product_id, order_id=order_id, quantity=quantity, remaining=remaining
                )
            )
        await publish(uow, tenant_id, events)
        return sum(quantity for _, _, quantity in held)
