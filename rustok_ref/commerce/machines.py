"""The payment and shipment machines, as data on the same `TransitionTable` as orders and
products, so every persisted status change of commerce is checked one way.

A payment is authorised, then captured (and perhaps refunded) or voided; a shipment is
scheduled, then shipped or cancelled. Domain code: no I/O framework.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from rustok_ref.commerce.states import TransitionTable


class PaymentStatus(StrEnum):
    AUTHORISED = "authorised"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"


class PaymentEvent(StrEnum):
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class ShipmentStatus(StrEnum):
    SCHEDULED = "scheduled"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


class ShipmentEvent(StrEnum):
    SHIP = "ship"
    CANCEL = "cancel"


PAYMENT_TABLE: Final = TransitionTable(
    "payment",
    PaymentStatus,
    PaymentEvent,
    PaymentStatus.AUTHORISED,
    {
        (PaymentStatus.AUTHORISED, PaymentEvent.CAPTURE): PaymentStatus.CAPTURED,
        (PaymentStatus.AUTHORISED, PaymentEvent.VOID): PaymentStatus.VOIDED,
        (PaymentStatus.CAPTURED, PaymentEvent.REFUND): PaymentStatus.REFUNDED,
    },
)

SHIPMENT_TABLE: Final = TransitionTable(
    "shipment",
    ShipmentStatus,
    ShipmentEvent,
    ShipmentStatus.SCHEDULED,
    {
        (ShipmentStatus.SCHEDULED, ShipmentEvent.SHIP): ShipmentStatus.SHIPPED,
        (ShipmentStatus.SCHEDULED, ShipmentEvent.CANCEL): ShipmentStatus.CANCELLED,
    },
)
