"""Shipments as our books keep them: the carrier's booking for an order, scheduled by the
checkout, then shipped with the order or cancelled by a compensation.

Recording is idempotent on the state it finds (the checkout re-runs a step after a crash):
a booking recorded already, or a cancellation of a shipment no longer scheduled, changes
nothing. Transitions go through the shipment table under an optimistic version check.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from opentelemetry import trace
from sqlalchemy import RowMapping, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rustok_ref.commerce.events import ShipmentCancelled, ShipmentScheduled, ShipmentShipped
from rustok_ref.commerce.machines import SHIPMENT_TABLE, ShipmentEvent, ShipmentStatus
from rustok_ref.commerce.providers.port import Booking
from rustok_ref.commerce.recording import publish, tenant_of, update_row
from rustok_ref.errors import NotFoundError
from rustok_ref.storage.tables import shipments
from rustok_ref.storage.unit_of_work import UnitOfWork

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class ShipmentRecord:
    id: UUID
    tenant_id: UUID
    order_id: UUID
    status: ShipmentStatus
    booking_id: str
    carrier: str
    tracking_number: str
    version: int

    @classmethod
    def from_row(cls, row: RowMapping) -> ShipmentRecord:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            order_id=row["order_id"],
            status=ShipmentStatus(row["status"]),
            booking_id=row["booking_id"],
            carrier=row["carrier"],
            tracking_number=row["tracking_number"],
            version=row["version"],
        )


def _span_ids(uow: UnitOfWork, order_id: UUID) -> dict[str, str]:
    """What a shipment span is searched by (review P2.1: tenant and order)."""
    return {"tenant_id": str(uow.tenant_id), "order_id": str(order_id)}


async def find_shipment(uow: UnitOfWork, order_id: UUID) -> ShipmentRecord | None:
    """The order's shipment, if the checkout booked one."""
    row = (
        (await uow.session.execute(select(shipments).where(shipments.c.order_id == order_id)))
        .mappings()
        .one_or_none()
    )
    return None if row is None else ShipmentRecord.from_row(row)


async def record_booking(
    uow: UnitOfWork, shipment_id: UUID, *, order_id: UUID, booking: Booking
) -> bool:
    """A scheduled shipment for the carrier's booking; False when it is recorded already."""
    with tracer.start_as_current_span(
        "shipments.book", attributes={**_span_ids(uow, order_id), "shipment_id": str(shipment_id)}
    ):
        tenant_id = tenant_of(uow)
        inserted = await uow.session.execute(
            pg_insert(shipments)
            .values(
                id=shipment_id,
                tenant_id=tenant_id,
                order_id=order_id,
                status=SHIPMENT_TABLE.initial.value,
                booking_id=booking.id,
                carrier=booking.carrier,
                tracking_number=booking.tracking_number,
                version=1,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(shipments.c.id)
        )
        if inserted.first() is None:
            return False
        scheduled = ShipmentScheduled(
            shipment_id=shipment_id,
            order_id=order_id,
            booking_id=booking.id,
            carrier=booking.carrier,
            tracking_number=booking.tracking_number,
        )
        await publish(uow, tenant_id, [scheduled], aggregate_version=1)
        return True


async def record_cancellation(uow: UnitOfWork, order_id: UUID) -> bool:
    """Scheduled -> cancelled; False when there is no shipment or it is not scheduled."""
    with tracer.start_as_current_span("shipments.cancel", attributes=_span_ids(uow, order_id)):
        current = await find_shipment(uow, order_id)
        if current is None or current.status is not ShipmentStatus.SCHEDULED:
            return False
        await _transition(uow, current, ShipmentEvent.CANCEL)
        return True


async def ship(uow: UnitOfWork, order_id: UUID) -> ShipmentRecord:
    """Scheduled -> shipped (with its order); NotFoundError when the order has none."""
    with tracer.start_as_current_span("shipments.ship", attributes=_span_ids(uow, order_id)):
        current = await find_shipment(uow, order_id)
        if current is None:
            raise NotFoundError(f"order {order_id} has no shipment")
        return await _transition(uow, current, ShipmentEvent.SHIP)


async def _transition(
    uow: UnitOfWork, current: ShipmentRecord, event: ShipmentEvent
) -> ShipmentRecord:
    status = SHIPMENT_TABLE.next_status(current.status, event)
    row = await update_row(
        uow, shipments, current.id, read_version=current.version, values={"status": status.value}
    )
    changed = ShipmentRecord.from_row(row)
    kind = ShipmentShipped if event is ShipmentEvent.SHIP else ShipmentCancelled
    await publish(
        uow,
        changed.tenant_id,
        [kind(shipment_id=changed.id, order_id=changed.order_id)],
        aggregate_version=changed.version,
    )
    return changed
