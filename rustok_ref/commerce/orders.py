"""Orders: lines of published products priced in the order's currency, moved through the
review's states (Draft -> PendingPayment -> Paid -> Shipped -> Delivered; Cancelled only from
Draft or PendingPayment) by the one order table, and event-sourced (A3).

Every change is decided on the order's current state (`aggregates.order_change`), appended
to the event store under the version it read, sent to the outbox, and folded into the row,
all in the caller's unit of work: the row is always the fold of the stored events, and of
two concurrent transitions the second gets a ConflictError. Bad input (no lines, a quantity
below one, an unknown SKU or another tenant's, a draft or archived product, a currency that
is not the order's) is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

from opentelemetry import trace
from sqlalchemy import RowMapping, func, insert, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from rustok_ref.commerce.aggregates import (
    EventSourcedOrder,
    OrderLine,
    apply_order,
    order_change,
    order_paid,
)
from rustok_ref.commerce.events import OrderCheckoutStarted, OrderLineAdded
from rustok_ref.commerce.money import Money, check_count, check_currency
from rustok_ref.commerce.products import MAX_SKU_BYTES, check_text
from rustok_ref.commerce.recording import check_expected, record, tenant_of, update_row
from rustok_ref.commerce.shipments import ship
from rustok_ref.commerce.states import ORDER_TABLE, OrderEvent, OrderStatus, ProductStatus
from rustok_ref.errors import ConflictError, NotFoundError, ValidationError
from rustok_ref.events.envelope import EventPayload, OrderPlaced
from rustok_ref.events.store import AggregateSpec, EventStore, Versioned
from rustok_ref.events.validation import INT32_MAX
from rustok_ref.storage.tables import order_lines, orders, products
from rustok_ref.storage.unit_of_work import UnitOfWork

MAX_LINES: Final = 100
MAX_REASON_BYTES: Final = 500

ORDER_AGGREGATE: Final = AggregateSpec(
    name="order",
    initial=EventSourcedOrder,
    apply=apply_order,
    state_type=EventSourcedOrder,
)
ORDER_EVENTS: Final = EventStore(ORDER_AGGREGATE)

tracer = trace.get_tracer(__name__)

_LINES = (
    select(
        func.coalesce(
            func.jsonb_agg(
                aggregate_order_by(
                    func.jsonb_build_object(
                        "line",
                        order_lines.c.line,
                        "product_id",
                        order_lines.c.product_id,
                        "sku",
                        order_lines.c.sku,
                        "quantity",
                        order_lines.c.quantity,
                        "unit_price",
                        order_lines.c.unit_price,
                    ),
                    order_lines.c.line,
                )
            ),
            literal_column("'[]'::jsonb"),
        )
    )
    .where(order_lines.c.order_id == orders.c.id)
    .scalar_subquery()
    .label("lines")
)


@dataclass(frozen=True, slots=True)
class OrderLineRequest:
    """A line as a client asks for it: which SKU, how many."""

    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: UUID
    tenant_id: UUID
    status: OrderStatus
    customer_id: UUID | None
    total: Money
    lines: tuple[OrderLine, ...]
    saga_id: UUID | None
    payment_id: UUID | None
    cancel_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping, lines: Sequence[Any]) -> OrderRecord:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            status=OrderStatus(row["status"]),
            customer_id=row["customer_id"],
            total=Money(row["total"], row["currency"]),
            lines=tuple(OrderLine.model_validate(line) for line in lines),
            saga_id=row["saga_id"],
            payment_id=row["payment_id"],
            cancel_reason=row["cancel_reason"],
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def state(self) -> EventSourcedOrder:
        """The event-sourced state this row holds (what replaying its events gives)."""
        return EventSourcedOrder(
            status=self.status,
            customer_id=self.customer_id,
            currency=self.total.currency,
            total=self.total.amount,
            lines=self.lines,
            saga_id=self.saga_id,
            payment_id=self.payment_id,
            cancel_reason=self.cancel_reason,
        )

    def versioned(self) -> Versioned[EventSourcedOrder]:
        return Versioned(self.id, self.version, self.state())


def _row_values(state: EventSourcedOrder) -> dict[str, Any]:
    return {
        "status": state.placed().value,
        "customer_id": state.customer_id,
        "currency": state.currency,
        "total": state.total,
        "saga_id": state.saga_id,
        "payment_id": state.payment_id,
        "cancel_reason": state.cancel_reason,
    }


async def create_order(
    uow: UnitOfWork,
    *,
    currency: str,
    lines: Sequence[OrderLineRequest],
    customer_id: UUID | None = None,
    order_id: UUID | None = None,
) -> OrderRecord:
    """A draft order of published products at their current prices, all in `currency`."""
    tenant_id = tenant_of(uow)
    new_id = order_id or uuid4()
    ids = {"tenant_id": str(tenant_id), "order_id": str(new_id)}
    with tracer.start_as_current_span("orders.create", attributes=ids) as span:
        check_currency(currency)
        wanted = _check_lines(lines)
        span.set_attribute("sku", list(wanted))
        found = {
            row["sku"]: row
            for row in (
                await uow.session.execute(
                    select(products).where(
                        products.c.tenant_id == tenant_id, products.c.sku.in_(list(wanted))
                    )
                )
            ).mappings()
        }
        unknown = [sku for sku in wanted if sku not in found]
        if unknown:
            raise NotFoundError(f"unknown SKU: {', '.join(unknown)}", extra={"skus": unknown})
        total = Money.zero(currency)
        added: list[EventPayload] = []
        for number, (sku, quantity) in enumerate(wanted.items(), start=1):
            product = found[sku]
            field = f"lines[{number - 1}]"
            if product["status"] != ProductStatus.PUBLISHED:
                raise ValidationError(
                    f"product {sku!r} is {product['status']}; only published products are sold",
                    fields={f"{field}.sku": ["product is not published"]},
                )
            price = Money(product["price"], product["currency"])
            price.require_currency(currency, field=f"{field}.currency")
            total += price.times(quantity)
            added.append(
                OrderLineAdded(
                    order_id=new_id,
                    line=number,
                    product_id=product["id"],
                    sku=sku,
                    quantity=quantity,
                    unit_price=price.amount,
                    currency=currency,
                )
            )
        placed = OrderPlaced(
            order_id=new_id, customer_id=customer_id, total=total.amount, currency=currency
        )
        start = Versioned(new_id, 0, EventSourcedOrder())
        after = await record(uow, ORDER_EVENTS, start, [placed, *added], tenant_id=tenant_id)
        row = (
            (
                await uow.session.execute(
                    insert(orders)
                    .values(
                        id=new_id,
                        tenant_id=tenant_id,
                        version=after.version,
                        **_row_values(after.state),
                    )
                    .returning(*orders.c)
                )
            )
            .mappings()
            .one()
        )
        await uow.session.execute(
            insert(order_lines),
            [
                {**line.model_dump(), "order_id": new_id, "tenant_id": tenant_id}
                for line in after.state.lines
            ],
        )
        return OrderRecord.from_row(row, after.state.lines)


async def get_order(uow: UnitOfWork, order_id: UUID) -> OrderRecord:
    """The tenant's order with its lines; NotFoundError for an unknown or another tenant's."""
    with tracer.start_as_current_span("orders.get", attributes=_span_ids(uow, order_id)):
        row = (
            (await uow.session.execute(select(orders, _LINES).where(orders.c.id == order_id)))
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise NotFoundError(f"order {order_id} not found")
        return OrderRecord.from_row(row, row["lines"])


async def order_history(uow: UnitOfWork, order_id: UUID) -> Versioned[EventSourcedOrder]:
    """The order rebuilt from its stored events alone (A3)."""
    return await ORDER_EVENTS.load(uow, order_id, use_snapshot=False)


async def submit_order(
    uow: UnitOfWork, order_id: UUID, *, expected_version: int | None = None
) -> OrderRecord:
    """Draft -> PendingPayment: the order waits for `CheckoutService.pay`."""
    return await _transition(uow, order_id, OrderEvent.SUBMIT, expected_version)


async def cancel_order(
    uow: UnitOfWork,
    order_id: UUID,
    *,
    reason: str | None = None,
    expected_version: int | None = None,
) -> OrderRecord:
    """Draft or PendingPayment -> Cancelled. A checkout still running for the order then
    fails to confirm it and gives back what it took."""
    if reason is not None:
        reason = check_text(reason, field="reason", max_bytes=MAX_REASON_BYTES)
    return await _transition(uow, order_id, OrderEvent.CANCEL, expected_version, reason=reason)


async def ship_order(
    uow: UnitOfWork, order_id: UUID, *, expected_version: int | None = None
) -> OrderRecord:
    """Paid -> Shipped, and the order's shipment with it."""
    shipped = await _transition(uow, order_id, OrderEvent.SHIP, expected_version)
    await ship(uow, order_id)
    return shipped


async def deliver_order(
    uow: UnitOfWork, order_id: UUID, *, expected_version: int | None = None
) -> OrderRecord:
    """Shipped -> Delivered."""
    return await _transition(uow, order_id, OrderEvent.DELIVER, expected_version)


async def start_checkout(
    uow: UnitOfWork,
    order_id: UUID,
    *,
    saga_id: UUID,
    payment_id: UUID,
    expected_version: int | None = None,
) -> OrderRecord:
    """Record that a checkout saga pays the order. InvalidTransitionError unless the order is
    PendingPayment; ConflictError while another checkout has it (paying twice)."""

    def decide(current: EventSourcedOrder) -> list[EventPayload]:
        ORDER_TABLE.next_status(current.placed(), OrderEvent.PAY)  # refuses any other state
        if current.saga_id is not None:
            raise ConflictError(
                f"order {order_id} is being paid by checkout {current.saga_id}",
                extra={"saga_id": str(current.saga_id)},
            )
        return [OrderCheckoutStarted(order_id=order_id, saga_id=saga_id, payment_id=payment_id)]

    return await _change(uow, order_id, "start_checkout", decide, expected_version)


async def mark_paid(
    uow: UnitOfWork, order_id: UUID, *, payment_id: UUID, amount: Money
) -> OrderRecord:
    """PendingPayment -> Paid by `payment_id`, which must be the order's checkout's."""

    def decide(current: EventSourcedOrder) -> list[EventPayload]:
        if current.payment_id != payment_id:
            raise ConflictError(f"order {order_id} is not paid by payment {payment_id}")
        return order_paid(order_id, current, payment_id=payment_id, amount=amount)

    return await _change(uow, order_id, "mark_paid", decide, None)


async def _transition(
    uow: UnitOfWork,
    order_id: UUID,
    event: OrderEvent,
    expected_version: int | None,
    *,
    reason: str | None = None,
) -> OrderRecord:
    def decide(current: EventSourcedOrder) -> list[EventPayload]:
        return order_change(order_id, current, event, reason=reason)

    return await _change(uow, order_id, event.value, decide, expected_version)


async def _change(
    uow: UnitOfWork,
    order_id: UUID,
    operation: str,
    decide: Callable[[EventSourcedOrder], list[EventPayload]],
    expected_version: int | None,
) -> OrderRecord:
    with tracer.start_as_current_span(f"orders.{operation}", attributes=_span_ids(uow, order_id)):
        current = await get_order(uow, order_id)
        check_expected("order", order_id, found=current.version, expected=expected_version)
        after = await record(
            uow,
            ORDER_EVENTS,
            current.versioned(),
            decide(current.state()),
            tenant_id=current.tenant_id,
        )
        row = await update_row(
            uow,
            orders,
            order_id,
            read_version=current.version,
            new_version=after.version,
            values=_row_values(after.state),
        )
        return OrderRecord.from_row(row, after.state.lines)


def _span_ids(uow: UnitOfWork, order_id: UUID) -> dict[str, str]:
    """What an order span is searched by (review P2.1: tenant and order)."""
    return {"tenant_id": str(uow.tenant_id), "order_id": str(order_id)}


def _check_lines(lines: Sequence[OrderLineRequest]) -> dict[str, int]:
    """SKU -> quantity, in the order given; ValidationError for an empty or oversized order,
    a blank SKU, a repeated one, or a quantity that is not a whole number from 1."""
    if not lines or len(lines) > MAX_LINES:
        raise ValidationError(
            f"an order has 1 to {MAX_LINES} lines, not {len(lines)}",
            fields={"lines": [f"1 to {MAX_LINES} lines"]},
        )
    wanted: dict[str, int] = {}
    for index, line in enumerate(lines):
        sku = check_text(line.sku, field=f"lines[{index}].sku", max_bytes=MAX_SKU_BYTES)
        if sku in wanted:
            raise ValidationError(
                f"SKU {sku!r} is on two lines", fields={f"lines[{index}].sku": ["repeated SKU"]}
            )
        wanted[sku] = check_count(
            line.quantity, field=f"lines[{index}].quantity", minimum=1, maximum=INT32_MAX
        )
    return wanted
