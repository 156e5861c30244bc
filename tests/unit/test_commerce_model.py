"""The commerce domain without a database: money in integer minor units, the event-sourced
Order and Payment folds and the decisions that feed them, the payment and shipment tables,
the commerce events' rules, and the checkout's shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustok_ref.commerce import (
    PAYMENT_TABLE,
    SHIPMENT_TABLE,
    CheckoutOutcome,
    CheckoutStatus,
    EventSourcedOrder,
    EventSourcedPayment,
    Money,
    OrderEvent,
    OrderStatus,
    PaymentStatus,
    Step,
    apply_order,
    apply_payment,
    checkout_saga,
    mermaid,
)
from rustok_ref.commerce.aggregates import order_change, order_paid
from rustok_ref.commerce.events import (
    OrderLineAdded,
    PaymentAuthorised,
    PaymentCaptured,
    PaymentRefunded,
    PaymentVoided,
    SagaCompensated,
    ShipmentScheduled,
    StockReserved,
)
from rustok_ref.errors import InvalidTransitionError, ValidationError
from rustok_ref.events.envelope import (
    CATALOGUE,
    EventEnvelope,
    EventPayload,
    OrderPlaced,
    OrderStatusChanged,
    new_envelope,
)
from rustok_ref.saga import SagaInstance, SagaState

TENANT = uuid.UUID("0b6f3d4e-2c1a-4f7b-9e8d-5a6b7c8d9e0f")
ORDER = uuid.UUID("1c7f4e5f-3d2b-4a8c-8f9e-6b7c8d9e0f1a")
PAYMENT = uuid.UUID("2d8a5f6a-4e3c-4b9d-9a0f-7c8d9e0f1a2b")


def _events(*payloads: EventPayload) -> list[EventEnvelope]:
    return [
        new_envelope(payload, tenant_id=TENANT, aggregate_version=version)
        for version, payload in enumerate(payloads, start=1)
    ]


def _fold(events: list[EventEnvelope]) -> EventSourcedOrder:
    state = EventSourcedOrder()
    for event in events:
        state = apply_order(state, event)
    return state


PLACED = OrderPlaced(order_id=ORDER, total=2500, currency="EUR")
LINE = OrderLineAdded(
    order_id=ORDER,
    line=1,
    product_id=uuid.uuid4(),
    sku="mug",
    quantity=2,
    unit_price=1250,
    currency="EUR",
)


# --- money ---------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 10**12), max_size=20))
def test_money_sums_are_exact_integers(amounts: list[int]) -> None:
    total = Money.zero("JPY")
    for amount in amounts:
        total += Money(amount, "JPY")
    assert total == Money(sum(amounts), "JPY")
    assert type(total.amount) is int


def test_money_refuses_mixing_currencies_and_overflowing() -> None:
    with pytest.raises(ValidationError, match="Currency mismatch"):
        _ = Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(ValidationError):
        Money(2**62, "EUR").times(4)
    assert Money(1250, "EUR").times(3) == Money(3750, "EUR")


# --- the event-sourced order ---------------------------------------------------------------


def test_an_order_is_the_fold_of_its_events() -> None:
    state = _fold(
        _events(PLACED, LINE, *order_change(ORDER, _fold(_events(PLACED)), OrderEvent.SUBMIT))
    )

    assert state.status is OrderStatus.PENDING_PAYMENT
    assert (state.total, state.currency) == (2500, "EUR")
    assert [(line.sku, line.quantity, line.unit_price) for line in state.lines] == [
        ("mug", 2, 1250)
    ]


def test_decisions_follow_the_one_order_table() -> None:
    draft = _fold(_events(PLACED))
    cancelled = order_change(ORDER, draft, OrderEvent.CANCEL, reason="no longer wanted")
    assert [type(p).__name__ for p in cancelled] == ["OrderStatusChanged", "OrderCancelled"]
    paid = draft.model_copy(update={"status": OrderStatus.PAID})
    with pytest.raises(InvalidTransitionError, match="allowed events: ship"):
        order_change(ORDER, paid, OrderEvent.CANCEL)
    with pytest.raises(ValueError, match="order_paid"):
        order_change(ORDER, draft, OrderEvent.PAY)
    pending = draft.model_copy(update={"status": OrderStatus.PENDING_PAYMENT})
    with pytest.raises(ValidationError, match="does not pay"):
        order_paid(ORDER, pending, payment_id=PAYMENT, amount=Money(2499, "EUR"))
    with pytest.raises(ValidationError, match="Currency mismatch"):
        order_paid(ORDER, pending, payment_id=PAYMENT, amount=Money(2500, "USD"))
    events = order_paid(ORDER, pending, payment_id=PAYMENT, amount=Money(2500, "EUR"))
    assert apply_order(pending, _events(events[0])[0]).status is OrderStatus.PAID


def test_a_history_the_table_refuses_does_not_fold() -> None:
    skipping = OrderStatusChanged(order_id=ORDER, old_status="draft", new_status="paid")
    with pytest.raises(InvalidTransitionError, match="draft -> paid"):
        _fold(_events(PLACED, skipping))
    with pytest.raises(InvalidTransitionError, match="placed twice"):
        _fold(_events(PLACED, PLACED))
    with pytest.raises(InvalidTransitionError, match="not been placed"):
        _fold(_events(LINE))


# --- the event-sourced payment -------------------------------------------------------------


def _payment(*payloads: EventPayload) -> EventSourcedPayment:
    state = EventSourcedPayment()
    for event in _events(*payloads):
        state = apply_payment(state, event)
    return state


AUTHORISED = PaymentAuthorised(
    payment_id=PAYMENT, order_id=ORDER, amount=2500, currency="EUR", authorisation_id="auth_1"
)
CAPTURED = PaymentCaptured(
    payment_id=PAYMENT, order_id=ORDER, amount=2500, currency="EUR", capture_id="cap_1"
)


def test_a_payment_is_authorised_then_captured_and_refunded_or_voided() -> None:
    refunded = PaymentRefunded(
        payment_id=PAYMENT, order_id=ORDER, amount=2500, currency="EUR", refund_id="ref_1"
    )
    state = _payment(AUTHORISED, CAPTURED, refunded)
    assert (state.status, state.capture_id, state.refund_id) == ("refunded", "cap_1", "ref_1")
    assert _payment(AUTHORISED, PaymentVoided(payment_id=PAYMENT, order_id=ORDER)).status is (
        PaymentStatus.VOIDED
    )
    with pytest.raises(InvalidTransitionError):
        _payment(AUTHORISED, CAPTURED, PaymentVoided(payment_id=PAYMENT, order_id=ORDER))
    with pytest.raises(InvalidTransitionError, match="not been authorised"):
        _payment(CAPTURED)


def test_the_payment_and_shipment_tables_draw_as_mermaid() -> None:
    assert "authorised --> captured : capture" in mermaid(PAYMENT_TABLE)
    assert set(SHIPMENT_TABLE.terminal) == {"shipped", "cancelled"}


# --- the commerce events -------------------------------------------------------------------


def test_the_commerce_events_are_in_the_catalogue_on_their_aggregates() -> None:
    added = {
        spec.event_type: spec.aggregate_type
        for spec in CATALOGUE
        if spec.model.__module__ == "rustok_ref.commerce.events"
    }
    assert added == {
        "order.line_added": "order",
        "order.checkout_started": "order",
        "order.paid": "order",
        "stock.reserved": "product",
        "stock.released": "product",
        "payment.authorised": "payment",
        "payment.captured": "payment",
        "payment.voided": "payment",
        "payment.refunded": "payment",
        "shipment.scheduled": "shipment",
        "shipment.cancelled": "shipment",
        "shipment.shipped": "shipment",
        "saga.started": "saga",
        "saga.completed": "saga",
        "saga.compensated": "saga",
    }


@pytest.mark.parametrize(
    ("model", "fields", "field"),
    [
        (StockReserved, {"quantity": 0, "remaining": 1}, "quantity"),
        (StockReserved, {"quantity": 1, "remaining": -1}, "remaining"),
        (PaymentAuthorised, {"amount": 1.5}, "amount"),
        (PaymentAuthorised, {"currency": "euro"}, "currency"),
        (ShipmentScheduled, {"carrier": " "}, "carrier"),
        (SagaCompensated, {"reason": "x" * 501}, "reason"),
    ],
)
def test_commerce_events_refuse_bad_values(
    model: type[EventPayload], fields: dict[str, Any], field: str
) -> None:
    valid: dict[type[EventPayload], dict[str, Any]] = {
        StockReserved: {
            "product_id": uuid.uuid4(),
            "order_id": ORDER,
            "quantity": 1,
            "remaining": 0,
        },
        PaymentAuthorised: AUTHORISED.model_dump(),
        ShipmentScheduled: {
            "shipment_id": uuid.uuid4(),
            "order_id": ORDER,
            "booking_id": "shp_1",
            "carrier": "Post",
            "tracking_number": "T1",
        },
        SagaCompensated: {"saga_id": uuid.uuid4(), "saga_type": "checkout", "subject_id": ORDER},
    }
    with pytest.raises(ValidationError) as caught:
        model(**{**valid[model], **fields})
    assert field in caught.value.fields


# --- the checkout's shape ------------------------------------------------------------------


def test_the_checkout_has_its_four_steps_each_with_a_compensation() -> None:
    nothing = cast(Any, None)
    definition = checkout_saga(nothing, nothing, nothing)
    assert [step.name for step in definition.steps] == list(Step)
    assert all(step.compensate is not None for step in definition.steps)
    assert len(definition.crash_points()) == 16


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (SagaState.RUNNING, CheckoutStatus.IN_PROGRESS),
        (SagaState.COMPENSATING, CheckoutStatus.IN_PROGRESS),
        (SagaState.COMPLETED, CheckoutStatus.PAID),
        (SagaState.COMPENSATED, CheckoutStatus.CANCELLED),
        (SagaState.FAILED, CheckoutStatus.FAILED),
    ],
)
def test_a_checkouts_outcome_follows_its_saga(state: SagaState, status: CheckoutStatus) -> None:
    now = datetime.now(UTC)
    saga = SagaInstance(
        id=uuid.uuid4(),
        saga_type="checkout",
        tenant_id=TENANT,
        state=state,
        step_index=0,
        data={"order_id": str(ORDER)},
        compensating=False,
        failure_reason="authorise_payment failed: boom",
        attempts=1,
        version=1,
        created_at=now,
        updated_at=now,
    )
    outcome = CheckoutOutcome.of(saga)
    assert (outcome.status, outcome.order_id) == (status, ORDER)
    assert (outcome.reason is None) == (status is CheckoutStatus.PAID)
