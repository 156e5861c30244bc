"""The commerce events the reference lacks, added to the catalogue: order lines and payment on
the order, stock reservations on the product, payments, shipments and sagas.

The reference's own product and order events (`events/envelope.py`) carry ids and little
else (OrderPlaced: total and currency), as rustok-index expects, which loads what it indexes.
The events added here carry what a fold needs: the event-sourced Order and Payment
(`aggregates.py`) are rebuilt from them alone. Domain code: no I/O framework.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

from rustok_ref.events.envelope import CATALOGUE, EventPayload
from rustok_ref.events.validation import (
    INT32_MAX,
    CurrencyCode,
    EntityId,
    MaxBytes,
    NonNegativeInt32,
    NonNegativeInt64,
    NotBlank,
)

PositiveInt32 = Annotated[int, Strict(), Field(ge=1, le=INT32_MAX)]
Sku = Annotated[str, NotBlank, MaxBytes(64)]
ProviderRef = Annotated[str, NotBlank, MaxBytes(100)]
"""An id a provider gave (authorisation, capture, refund, booking)."""
Reason = Annotated[str, MaxBytes(500)]


# The order: its lines, the checkout that pays it, the payment that did.
@CATALOGUE.register("order.line_added", aggregate="order", key="order_id")
class OrderLineAdded(EventPayload):
    order_id: EntityId
    line: PositiveInt32
    product_id: EntityId
    sku: Sku
    quantity: PositiveInt32
    unit_price: NonNegativeInt64
    currency: CurrencyCode


@CATALOGUE.register("order.checkout_started", aggregate="order", key="order_id")
class OrderCheckoutStarted(EventPayload):
    order_id: EntityId
    saga_id: EntityId
    payment_id: EntityId


@CATALOGUE.register("order.paid", aggregate="order", key="order_id")
class OrderPaid(EventPayload):
    order_id: EntityId
    payment_id: EntityId
    amount: NonNegativeInt64
    currency: CurrencyCode


# Stock: held by checkouts, on the product's stream (a product here is its only variant).
@CATALOGUE.register("stock.reserved", aggregate="product", key="product_id")
class StockReserved(EventPayload):
    product_id: EntityId
    order_id: EntityId
    quantity: PositiveInt32
    remaining: NonNegativeInt32


@CATALOGUE.register("stock.released", aggregate="product", key="product_id")
class StockReleased(EventPayload):
    product_id: EntityId
    order_id: EntityId
    quantity: PositiveInt32
    remaining: NonNegativeInt32


# Payments (event-sourced): authorised, then captured and perhaps refunded, or voided.
@CATALOGUE.register("payment.authorised", aggregate="payment", key="payment_id")
class PaymentAuthorised(EventPayload):
    payment_id: EntityId
    order_id: EntityId
    amount: NonNegativeInt64
    currency: CurrencyCode
    authorisation_id: ProviderRef


@CATALOGUE.register("payment.captured", aggregate="payment", key="payment_id")
class PaymentCaptured(EventPayload):
    payment_id: EntityId
    order_id: EntityId
    amount: NonNegativeInt64
    currency: CurrencyCode
    capture_id: ProviderRef


@CATALOGUE.register("payment.voided", aggregate="payment", key="payment_id")
class PaymentVoided(EventPayload):
    payment_id: EntityId
    order_id: EntityId


@CATALOGUE.register("payment.refunded", aggregate="payment", key="payment_id")
class PaymentRefunded(EventPayload):
    payment_id: EntityId
    order_id: EntityId
    amount: NonNegativeInt64
    currency: CurrencyCode
    refund_id: ProviderRef


# Shipments: booked with the carrier by the checkout, shipped or cancelled later.
@CATALOGUE.register("shipment.scheduled", aggregate="shipment", key="shipment_id")
class ShipmentScheduled(EventPayload):
    shipment_id: EntityId
    order_id: EntityId
    booking_id: ProviderRef
    carrier: Annotated[str, NotBlank, MaxBytes(50)]
    tracking_number: ProviderRef


@CATALOGUE.register("shipment.cancelled", aggregate="shipment", key="shipment_id")
class ShipmentCancelled(EventPayload):
    shipment_id: EntityId
    order_id: EntityId


@CATALOGUE.register("shipment.shipped", aggregate="shipment", key="shipment_id")
class ShipmentShipped(EventPayload):
    shipment_id: EntityId
    order_id: EntityId


# Sagas: when one started, and how it ended when it did not end parked.
SagaType = Annotated[str, NotBlank, MaxBytes(64)]


@CATALOGUE.register("saga.started", aggregate="saga", key="saga_id")
class SagaStarted(EventPayload):
    saga_id: EntityId
    saga_type: SagaType
    subject_id: EntityId
    """What the saga works on (the order of a checkout)."""


@CATALOGUE.register("saga.completed", aggregate="saga", key="saga_id")
class SagaCompleted(EventPayload):
    saga_id: EntityId
    saga_type: SagaType
    subject_id: EntityId


@CATALOGUE.register("saga.compensated", aggregate="saga", key="saga_id")
class SagaCompensated(EventPayload):
    saga_id: EntityId
    saga_type: SagaType
    subject_id: EntityId
    reason: Reason | None = None
