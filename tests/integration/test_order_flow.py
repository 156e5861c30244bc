"""P2.2's whole order flow against the real services: create a product, create an order,
submit it, pay it, and check its status, that OrderPaid reached the outbox, and that the
order and product read views (relay -> stream -> projection, run in-process) show it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from fixtures.checkout_books import place_order, read_ledger, stock_product, wire_checkout
from fixtures.outbox_pipeline import drain, own_prefix, wait_until
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce import (
    ORDER_VIEW,
    PRODUCT_VIEW,
    CheckoutStatus,
    OrderStatus,
    deliver_order,
    find_shipment,
    get_order,
    get_payment,
    ship_order,
)
from rustok_ref.config import Settings
from rustok_ref.events.consumer import ConsumerConfig
from rustok_ref.events.projections import Projection
from rustok_ref.events.relay import OutboxRelay, RelayConfig
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import order_view, outbox, product_view

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def live_views(
    sessions: async_sessionmaker[AsyncSession], redis: aioredis.Redis, prefix: str
) -> AsyncIterator[None]:
    """The relay and both views' consumers, running until the block ends."""
    stop = asyncio.Event()
    relay = OutboxRelay(sessions, redis, prefix=prefix, config=RelayConfig(idle_s=0.01))
    views: list[Projection] = [ORDER_VIEW, PRODUCT_VIEW]
    tasks = [asyncio.create_task(relay.run(stop))] + [
        asyncio.create_task(
            view.consumer(
                redis, sessions, prefix=prefix, config=ConsumerConfig(lanes=2, block_ms=20)
            ).run(stop)
        )
        for view in views
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def _row(
    sessions: async_sessionmaker[AsyncSession], tenant: uuid.UUID, query: Any
) -> dict[str, Any] | None:
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        found = (await uow.session.execute(query)).mappings().one_or_none()
    return None if found is None else dict(found)


async def test_the_whole_order_flow_reaches_the_outbox_and_the_read_views(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    app_settings: Settings,
) -> None:
    tenant = uuid.uuid4()
    checkout = wire_checkout(sessions)

    product = await stock_product(sessions, tenant, stock=5)
    order = await place_order(sessions, tenant, [(product, 2)])
    assert (order.status, order.total.amount) == (OrderStatus.PENDING_PAYMENT, 2 * 1250)

    outcome = await checkout.service.pay(tenant, order.id)

    assert outcome.status is CheckoutStatus.PAID, outcome
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        paid = await get_order(uow, order.id)
        assert paid.payment_id is not None
        payment = await get_payment(uow, paid.payment_id)
        booked = await find_shipment(uow, order.id)
        events = (
            await uow.session.execute(
                select(outbox.c.type, outbox.c.payload)
                .where(outbox.c.aggregateid == order.id)
                .order_by(outbox.c.seq)
            )
        ).all()
    assert paid.status is OrderStatus.PAID
    assert (payment.status, payment.amount) == ("captured", paid.total)
    assert booked is not None and booked.status == "scheduled"
    assert [kind for kind, _ in events] == [
        "order.placed",
        "order.line_added",
        "order.status_changed",
        "order.checkout_started",
        "order.status_changed",
        "order.paid",
    ]
    assert events[-1][1] == {
        "order_id": str(order.id),
        "payment_id": str(payment.id),
        "amount": 2500,
        "currency": "EUR",
    }
    assert (await read_ledger(sessions, tenant)).violations({product.id: 5}, settled=True) == []

    prefix = own_prefix(app_settings.redis_prefix)
    async with live_views(sessions, redis_client, prefix):
        view_of_order = select(order_view).where(order_view.c.order_id == order.id)
        view_of_product = select(product_view).where(product_view.c.product_id == product.id)

        async def shown() -> bool:
            row = await _row(sessions, tenant, view_of_order)
            stock = await _row(sessions, tenant, view_of_product)
            paid = row and row["status"] == "paid" and row["payment_id"] is not None
            return bool(paid and stock and stock["stock"] == 3)

        await wait_until(shown, what="the paid order and the product's stock in the views")
        row = await _row(sessions, tenant, view_of_order)
        assert row is not None
        assert (row["payment_id"], row["total"], row["lines"]) == (payment.id, 2500, 1)

        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            await ship_order(uow, order.id)
            delivered = await deliver_order(uow, order.id)
            await uow.commit()
        assert delivered.status is OrderStatus.DELIVERED

        async def delivered_shown() -> bool:
            row = await _row(sessions, tenant, view_of_order)
            return bool(row and row["status"] == "delivered")

        await wait_until(delivered_shown, what="the delivered order in the view")


async def test_a_rebuilt_order_view_equals_the_incremental_one(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    app_settings: Settings,
) -> None:
    tenant = uuid.uuid4()
    checkout = wire_checkout(sessions)
    product = await stock_product(sessions, tenant, stock=4)
    kept = await place_order(sessions, tenant, [(product, 1)])
    dropped = await place_order(sessions, tenant, [(product, 1)], submit=False)
    assert (await checkout.service.pay(tenant, kept.id)).status is CheckoutStatus.PAID
    ids = [kept.id, dropped.id]
    query = select(order_view).where(order_view.c.order_id.in_(ids)).order_by(order_view.c.order_id)

    async def rows() -> list[dict[str, Any]]:
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            return [dict(row) for row in (await uow.session.execute(query)).mappings()]

    async def settled() -> bool:
        found = await rows()
        return len(found) == 2 and any(row["status"] == "paid" for row in found)

    prefix = own_prefix(app_settings.redis_prefix)
    consumer = ORDER_VIEW.consumer(redis_client, sessions, prefix=prefix)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await drain(OutboxRelay(sessions, redis_client, prefix=prefix))
        await wait_until(settled, what="both orders in the view")
    finally:
        stop.set()
        await running
    incremental = await rows()
    await ORDER_VIEW.rebuild(sessions)
    assert await rows() == incremental
    assert [row["status"] for row in incremental] == [
        "paid" if row["order_id"] == kept.id else "draft" for row in incremental
    ]
