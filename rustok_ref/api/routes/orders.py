"""REST: orders and paying them. Reads of one order and every change go through the domain
(`commerce/orders.py`, `CheckoutService`); the list pages through the read index."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response
from opentelemetry import trace

from rustok_ref.api.auth import Permission
from rustok_ref.api.context import RequestContext, require
from rustok_ref.api.readindex import DEFAULT_LIMIT, MAX_LIMIT, list_orders, list_scope
from rustok_ref.api.schemas import (
    PROBLEM_RESPONSES,
    Checkout,
    Order,
    OrderCancel,
    OrderCreate,
    OrderLineCreate,
    OrderSummary,
    Page,
)
from rustok_ref.commerce import orders
from rustok_ref.commerce.checkout import CheckoutStatus
from rustok_ref.commerce.orders import OrderLineRequest, OrderRecord
from rustok_ref.commerce.products import get_product
from rustok_ref.commerce.states import OrderStatus
from rustok_ref.errors import NotFoundError
from rustok_ref.storage.unit_of_work import UnitOfWork

router = APIRouter(tags=["orders"], responses=PROBLEM_RESPONSES)

Reader = Annotated[RequestContext, Depends(require(Permission.ORDERS_READ))]
Buyer = Annotated[RequestContext, Depends(require(Permission.ORDERS_PLACE))]
Fulfiller = Annotated[RequestContext, Depends(require(Permission.ORDERS_FULFIL))]
Transition = Callable[[UnitOfWork, UUID], Awaitable[OrderRecord]]


def _trace_order(order_id: UUID) -> None:
    trace.get_current_span().set_attribute("order_id", str(order_id))


async def _by_sku(
    uow: UnitOfWork, lines: Sequence[OrderLineCreate]
) -> tuple[str, list[OrderLineRequest]]:
    """The order's currency (its first product's) and its lines by SKU, as the domain takes
    them; NotFoundError for a product that is not the tenant's."""
    found = [await get_product(uow, line.product_id) for line in lines]
    requested = [
        OrderLineRequest(sku=product.sku, quantity=line.quantity)
        for product, line in zip(found, lines, strict=True)
    ]
    return found[0].price.currency, requested


@router.get("/orders", response_model=Page[OrderSummary], summary="List orders (read index).")
async def get_orders(
    context: Reader,
    status: OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[OrderSummary]:
    async with context.uow() as uow:
        page = await list_orders(
            uow, tenant_id=list_scope(context), status=status, limit=limit, cursor=cursor
        )
    items = [OrderSummary.of_view(row) for row in page.rows]
    return Page(items=items, next_cursor=page.next_cursor)


@router.post("/orders", response_model=Order, status_code=201, summary="Place a draft order.")
async def create_order(body: OrderCreate, context: Buyer) -> Order:
    async with context.uow() as uow:
        currency, lines = await _by_sku(uow, body.lines)
        created = await orders.create_order(
            uow, currency=currency, lines=lines, customer_id=body.customer_id
        )
        await uow.commit()
    _trace_order(created.id)
    return Order.of(created)


@router.get("/orders/{order_id}", response_model=Order, summary="One order with its lines.")
async def get_order(order_id: UUID, context: Reader) -> Order:
    _trace_order(order_id)
    async with context.uow() as uow:
        found = await orders.get_order(uow, order_id)
    return Order.of(found)


async def _move(context: RequestContext, order_id: UUID, transition: Transition) -> Order:
    _trace_order(order_id)
    async with context.uow() as uow:
        moved = await transition(uow, order_id)
        await uow.commit()
    return Order.of(moved)


@router.post("/orders/{order_id}/submit", response_model=Order, summary="Draft -> pending payment.")
async def submit_order(order_id: UUID, context: Buyer) -> Order:
    return await _move(context, order_id, orders.submit_order)


@router.post("/orders/{order_id}/ship", response_model=Order, summary="Paid -> shipped (staff).")
async def ship_order(order_id: UUID, context: Fulfiller) -> Order:
    return await _move(context, order_id, orders.ship_order)


@router.post(
    "/orders/{order_id}/deliver", response_model=Order, summary="Shipped -> delivered (staff)."
)
async def deliver_order(order_id: UUID, context: Fulfiller) -> Order:
    return await _move(context, order_id, orders.deliver_order)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=Order,
    summary="Cancel a draft or pending order.",
)
async def cancel_order(order_id: UUID, context: Buyer, body: OrderCancel | None = None) -> Order:
    _trace_order(order_id)
    reason = None if body is None else body.reason
    async with context.uow() as uow:
        cancelled = await orders.cancel_order(uow, order_id, reason=reason)
        await uow.commit()
    return Order.of(cancelled)


@router.post(
    "/orders/{order_id}/pay",
    response_model=Checkout,
    summary="Pay a pending order with the checkout saga.",
    responses={
        202: {
            "model": Checkout,
            "description": "Still in progress after the sync wait; poll the Location.",
            "headers": {
                "Location": {
                    "description": "This checkout: GET /orders/{order_id}/checkout/{saga_id}.",
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
async def pay_order(order_id: UUID, context: Buyer, response: Response) -> Checkout:
    _trace_order(order_id)
    outcome = await context.services.checkout.pay(context.tenant.id, order_id)
    if outcome.status is CheckoutStatus.IN_PROGRESS:
        response.status_code = 202
        response.headers["Location"] = f"/orders/{order_id}/checkout/{outcome.saga_id}"
    return Checkout.of(outcome)


@router.get(
    "/orders/{order_id}/checkout/{saga_id}",
    response_model=Checkout,
    summary="Where paying the order stands.",
)
async def get_checkout(order_id: UUID, saga_id: UUID, context: Reader) -> Checkout:
    _trace_order(order_id)
    outcome = await context.services.checkout.outcome(context.tenant.id, saga_id)
    if outcome.order_id != order_id:
        raise NotFoundError(f"order {order_id} has no checkout {saga_id}")
    return Checkout.of(outcome)
