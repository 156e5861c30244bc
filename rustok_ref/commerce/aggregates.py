"""The event-sourced Order and Payment (review A3): each is the fold of its events.

`apply_order` and `apply_payment` are the pure `apply(state, event) -> state` the event
store's `AggregateSpec` takes; the services decide a change against the current state, fold
the new events into it and write the result to the aggregate's row in the same transaction
(`orders.py`, `payments.py`), so the persisted row is always the fold of the stored events
(a property test replays them and compares). A history that breaks the transition tables
does not fold: replaying it raises InvalidTransitionError.

The decisions (`order_change`, `order_paid`) check the one order table, so a service cannot
write an event the table refuses. Domain code: no I/O framework.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict

from rustok_ref.commerce.events import (
    OrderCheckoutStarted,
    OrderLineAdded,
    OrderPaid,
    PaymentAuthorised,
    PaymentCaptured,
    PaymentRefunded,
    PaymentVoided,
)
from rustok_ref.commerce.machines import PAYMENT_TABLE, PaymentEvent, PaymentStatus
from rustok_ref.commerce.money import Money
from rustok_ref.commerce.states import ORDER_TABLE, OrderEvent, OrderStatus
from rustok_ref.errors import InvalidTransitionError, ValidationError
from rustok_ref.events.envelope import (
    EventEnvelope,
    EventPayload,
    OrderCancelled,
    OrderCompleted,
    OrderPlaced,
    OrderStatusChanged,
)


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: int
    product_id: UUID
    sku: str
    quantity: int
    unit_price: int


class EventSourcedOrder(BaseModel):
    """An order as its events leave it; `status` is None before it was placed."""

    model_config = ConfigDict(frozen=True)

    status: OrderStatus | None = None
    customer_id: UUID | None = None
    currency: str | None = None
    total: int = 0
    lines: tuple[OrderLine, ...] = ()
    saga_id: UUID | None = None
    payment_id: UUID | None = None
    cancel_reason: str | None = None

    def placed(self) -> OrderStatus:
        """The status of an order that exists; InvalidTransitionError before it was placed."""
        if self.status is None:
            raise InvalidTransitionError("the order has not been placed")
        return self.status


class EventSourcedPayment(BaseModel):
    """A payment as its events leave it; `status` is None before it was authorised."""

    model_config = ConfigDict(frozen=True)

    status: PaymentStatus | None = None
    order_id: UUID | None = None
    amount: int = 0
    currency: str | None = None
    authorisation_id: str | None = None
    capture_id: str | None = None
    refund_id: str | None = None


def apply_order(state: EventSourcedOrder, event: EventEnvelope) -> EventSourcedOrder:
    payload = event.payload
    if isinstance(payload, OrderPlaced):
        if state.status is not None:
            raise InvalidTransitionError(f"order {payload.order_id} was placed twice")
        return EventSourcedOrder(
            status=ORDER_TABLE.initial,
            customer_id=payload.customer_id,
            currency=payload.currency,
            total=payload.total,
        )
    status = state.placed()
    if isinstance(payload, OrderLineAdded):
        line = OrderLine(
            line=payload.line,
            product_id=payload.product_id,
            sku=payload.sku,
            quantity=payload.quantity,
            unit_price=payload.unit_price,
        )
        return state.model_copy(update={"lines": (*state.lines, line)})
    if isinstance(payload, OrderStatusChanged):
        old, new = OrderStatus(payload.old_status), OrderStatus(payload.new_status)
        if old != status or new not in _targets(old):
            raise InvalidTransitionError(
                f"order {payload.order_id} is {status}; the event moves it {old} -> {new}"
            )
        return state.model_copy(update={"status": new})
    if isinstance(payload, OrderCheckoutStarted):
        return state.model_copy(
            update={"saga_id": payload.saga_id, "payment_id": payload.payment_id}
        )
    if isinstance(payload, OrderPaid):
        return state.model_copy(update={"payment_id": payload.payment_id})
    if isinstance(payload, OrderCancelled):
        return state.model_copy(update={"cancel_reason": payload.reason})
    if isinstance(payload, OrderCompleted):
        return state
    raise ValueError(f"{event.event_type} is not an order event")


def apply_payment(state: EventSourcedPayment, event: EventEnvelope) -> EventSourcedPayment:
    payload = event.payload
    if isinstance(payload, PaymentAuthorised):
        if state.status is not None:
            raise InvalidTransitionError(f"payment {payload.payment_id} was authorised twice")
        return EventSourcedPayment(
            status=PAYMENT_TABLE.initial,
            order_id=payload.order_id,
            amount=payload.amount,
            currency=payload.currency,
            authorisation_id=payload.authorisation_id,
        )
    if state.status is None:
        raise InvalidTransitionError("the payment has not been authorised")
    if isinstance(payload, PaymentCaptured):
        return state.model_copy(
            update={
                "status": PAYMENT_TABLE.next_status(state.status, PaymentEvent.CAPTURE),
                "capture_id": payload.capture_id,
            }
        )
    if isinstance(payload, PaymentVoided):
        return state.model_copy(
            update={"status": PAYMENT_TABLE.next_status(state.status, PaymentEvent.VOID)}
        )
    if isinstance(payload, PaymentRefunded):
        return state.model_copy(
            update={
                "status": PAYMENT_TABLE.next_status(state.status, PaymentEvent.REFUND),
                "refund_id": payload.refund_id,
            }
        )
    raise ValueError(f"{event.event_type} is not a payment event")


def _targets(source: OrderStatus) -> set[OrderStatus]:
    return {target for (src, _), target in ORDER_TABLE.transitions.items() if src == source}


def order_change(
    order_id: UUID, state: EventSourcedOrder, event: OrderEvent, *, reason: str | None = None
) -> list[EventPayload]:
    """The events of `event` on the order (InvalidTransitionError where the table refuses):
    the status change, and OrderCancelled or OrderCompleted where the event is one of those.
    Paying has its own decision (`order_paid`): it names the payment."""
    if event is OrderEvent.PAY:
        raise ValueError("use order_paid: paying names the payment")
    old = state.placed()
    new = ORDER_TABLE.next_status(old, event)
    payloads: list[EventPayload] = [
        OrderStatusChanged(order_id=order_id, old_status=old, new_status=new)
    ]
    if event is OrderEvent.CANCEL:
        payloads.append(OrderCancelled(order_id=order_id, reason=reason))
    elif event is OrderEvent.DELIVER:
        payloads.append(OrderCompleted(order_id=order_id))
    return payloads


def order_paid(
    order_id: UUID, state: EventSourcedOrder, *, payment_id: UUID, amount: Money
) -> list[EventPayload]:
    """The events of paying the order with `amount`, which must be its total."""
    old = state.placed()
    new = ORDER_TABLE.next_status(old, OrderEvent.PAY)
    assert state.currency is not None  # a placed order has one
    total = Money(state.total, state.currency)
    total.require_currency(amount.currency)
    if amount != total:
        raise ValidationError(
            f"a payment of {amount} does not pay the order's total of {total}",
            fields={"amount": [f"must be {total.amount}"]},
        )
    return [
        OrderStatusChanged(order_id=order_id, old_status=old, new_status=new),
        OrderPaid(
            order_id=order_id,
            payment_id=payment_id,
            amount=amount.amount,
            currency=amount.currency,
        ),
    ]
