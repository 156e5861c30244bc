"""Payments as our books keep them, event-sourced (A3): what the payment provider authorised,
captured, voided or refunded for an order, recorded after the provider answered.

The checkout saga calls these after each provider call, so each is idempotent on the state
it finds: recording an authorisation that is there already, or a void of a payment that is
no longer authorised, changes nothing. The row is the fold of the payment's events, written
in the same transaction as they are (store and outbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from opentelemetry import trace
from sqlalchemy import RowMapping, insert, select

from rustok_ref.commerce.aggregates import EventSourcedPayment, apply_payment
from rustok_ref.commerce.events import (
    PaymentAuthorised,
    PaymentCaptured,
    PaymentRefunded,
    PaymentVoided,
)
from rustok_ref.commerce.machines import PaymentStatus
from rustok_ref.commerce.money import Money
from rustok_ref.commerce.recording import record, tenant_of, update_row
from rustok_ref.errors import NotFoundError
from rustok_ref.events.envelope import EventPayload
from rustok_ref.events.store import AggregateSpec, EventStore, Versioned
from rustok_ref.storage.tables import payments
from rustok_ref.storage.unit_of_work import UnitOfWork

PAYMENT_AGGREGATE: Final = AggregateSpec(
    name="payment",
    initial=EventSourcedPayment,
    apply=apply_payment,
    state_type=EventSourcedPayment,
)
PAYMENT_EVENTS: Final = EventStore(PAYMENT_AGGREGATE)

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    id: UUID
    tenant_id: UUID
    order_id: UUID
    status: PaymentStatus
    amount: Money
    authorisation_id: str
    capture_id: str | None
    refund_id: str | None
    version: int

    @classmethod
    def from_row(cls, row: RowMapping) -> PaymentRecord:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            order_id=row["order_id"],
            status=PaymentStatus(row["status"]),
            amount=Money(row["amount"], row["currency"]),
            authorisation_id=row["authorisation_id"],
            capture_id=row["capture_id"],
            refund_id=row["refund_id"],
            version=row["version"],
        )

    def state(self) -> EventSourcedPayment:
        """The event-sourced state this row holds (what replaying its events gives)."""
        return EventSourcedPayment(
            status=self.status,
            order_id=self.order_id,
            amount=self.amount.amount,
            currency=self.amount.currency,
            authorisation_id=self.authorisation_id,
            capture_id=self.capture_id,
            refund_id=self.refund_id,
        )


def _row_values(state: EventSourcedPayment) -> dict[str, Any]:
    return state.model_dump(exclude={"order_id"})


def _span_ids(uow: UnitOfWork, payment_id: UUID) -> dict[str, str]:
    """What a payment span is searched by (review P2.1: tenant and payment)."""
    return {"tenant_id": str(uow.tenant_id), "payment_id": str(payment_id)}


async def find_payment(uow: UnitOfWork, payment_id: UUID) -> PaymentRecord | None:
    row = (
        (await uow.session.execute(select(payments).where(payments.c.id == payment_id)))
        .mappings()
        .one_or_none()
    )
    return None if row is None else PaymentRecord.from_row(row)


async def get_payment(uow: UnitOfWork, payment_id: UUID) -> PaymentRecord:
    found = await find_payment(uow, payment_id)
    if found is None:
        raise NotFoundError(f"payment {payment_id} not found")
    return found


async def payment_history(uow: UnitOfWork, payment_id: UUID) -> Versioned[EventSourcedPayment]:
    """The payment rebuilt from its stored events alone (A3)."""
    return await PAYMENT_EVENTS.load(uow, payment_id, use_snapshot=False)


async def record_authorisation(
    uow: UnitOfWork, payment_id: UUID, *, order_id: UUID, amount: Money, authorisation_id: str
) -> PaymentRecord:
    """A new authorised payment; the one recorded already when it exists."""
    with tracer.start_as_current_span(
        "payments.authorise", attributes={**_span_ids(uow, payment_id), "order_id": str(order_id)}
    ):
        existing = await find_payment(uow, payment_id)
        if existing is not None:
            return existing
        tenant_id = tenant_of(uow)
        authorised = PaymentAuthorised(
            payment_id=payment_id,
            order_id=order_id,
            amount=amount.amount,
            currency=amount.currency,
            authorisation_id=authorisation_id,
        )
        start = Versioned(payment_id, 0, EventSourcedPayment())
        after = await record(uow, PAYMENT_EVENTS, start, [authorised], tenant_id=tenant_id)
        row = (
            (
                await uow.session.execute(
                    insert(payments)
                    .values(
                        id=payment_id,
                        tenant_id=tenant_id,
                        order_id=order_id,
                        version=after.version,
                        **_row_values(after.state),
                    )
                    .returning(*payments.c)
                )
            )
            .mappings()
            .one()
        )
        return PaymentRecord.from_row(row)


async def record_capture(uow: UnitOfWork, payment_id: UUID, *, capture_id: str) -> bool:
    """Authorised -> captured; False when it is captured already (InvalidTransitionError
    from any other state)."""
    with tracer.start_as_current_span("payments.capture", attributes=_span_ids(uow, payment_id)):
        current = await get_payment(uow, payment_id)
        if current.status is PaymentStatus.CAPTURED:
            return False
        captured = PaymentCaptured(
            payment_id=payment_id,
            order_id=current.order_id,
            amount=current.amount.amount,
            currency=current.amount.currency,
            capture_id=capture_id,
        )
        await _change(uow, current, [captured])
        return True


async def record_void(uow: UnitOfWork, payment_id: UUID) -> bool:
    """Authorised -> voided; False for a payment not recorded or no longer authorised."""
    with tracer.start_as_current_span("payments.void", attributes=_span_ids(uow, payment_id)):
        current = await find_payment(uow, payment_id)
        if current is None or current.status is not PaymentStatus.AUTHORISED:
            return False
        await _change(
            uow, current, [PaymentVoided(payment_id=payment_id, order_id=current.order_id)]
        )
        return True


async def record_refund(
    uow: UnitOfWork, payment_id: UUID, *, refund_id: str, capture_id: str
) -> bool:
    """Captured -> refunded. A refund of a capture our books never recorded (the capture
    landed, then its recording failed) records the capture first. False when the payment
    is not recorded or refunded already."""
    with tracer.start_as_current_span("payments.refund", attributes=_span_ids(uow, payment_id)):
        current = await find_payment(uow, payment_id)
        if current is None or current.status is PaymentStatus.REFUNDED:
            return False
        money = {"amount": current.amount.amount, "currency": current.amount.currency}
        events: list[EventPayload] = []
        if current.status is PaymentStatus.AUTHORISED:
            events.append(
                PaymentCaptured(
                    payment_id=payment_id, order_id=current.order_id, capture_id=capture_id, **money
                )
            )
        events.append(
            PaymentRefunded(
                payment_id=payment_id, order_id=current.order_id, refund_id=refund_id, **money
            )
        )
        await _change(uow, current, events)
        return True


async def _change(uow: UnitOfWork, current: PaymentRecord, events: list[EventPayload]) -> None:
    read = Versioned(current.id, current.version, current.state())
    after = await record(uow, PAYMENT_EVENTS, read, events, tenant_id=current.tenant_id)
    await update_row(
        uow,
        payments,
        current.id,
        read_version=current.version,
        new_version=after.version,
        values=_row_values(after.state),
    )
