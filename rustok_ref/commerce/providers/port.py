"""The ports of the external payment and shipping services: what the checkout calls, and
what a real provider's adapter (or the stand-in) implements.

Every call carries an idempotency key (the saga step's, the same on every retry and re-run):
a call repeated with a key answers what the first call did and takes no second effect, as
payment APIs do with their Idempotency-Key header. The undo calls (`void`, `refund`,
`cancel_shipment`) name the key of the call they undo rather than its result, because a
crash can lose the result (the effect landed, the saga never recorded what came back): an
undo of a key that took no effect answers None and does nothing, which is what a saga's
compensation needs. A real adapter keeps the key with the provider's object (metadata) to
find it again.

Errors, in the one taxonomy: `ProviderUnavailableError` (transient: the call took no
effect; retry it), an InternalError should it ever reach a client (a 500 showing nothing of
the provider), and `ProviderRejectedError` (final: the provider refuses, e.g. capturing a
voided authorisation), a ConflictError. Domain code: no I/O framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from rustok_ref.commerce.money import Money
from rustok_ref.errors import ConflictError, InternalError


class ProviderUnavailableError(InternalError):
    """The provider did not answer or failed; the call took no effect and may be retried."""


class ProviderRejectedError(ConflictError):
    """The provider refuses the call; retrying it will not help."""


@dataclass(frozen=True, slots=True)
class Authorisation:
    id: str
    order_id: UUID
    amount: Money
    status: str


@dataclass(frozen=True, slots=True)
class Capture:
    id: str
    authorisation_id: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    authorisation_id: str
    capture_id: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Booking:
    """A carrier's booking of a shipment."""

    id: str
    order_id: UUID
    carrier: str
    tracking_number: str
    status: str


class PaymentProvider(Protocol):
    async def authorise(
        self, *, key: str, tenant_id: UUID, order_id: UUID, amount: Money
    ) -> Authorisation:
        """Hold `amount` for the order."""
        ...

    async def capture(
        self, *, key: str, tenant_id: UUID, authorisation_id: str, amount: Money
    ) -> Capture:
        """Take what the authorisation holds."""
        ...

    async def void(self, *, key: str, tenant_id: UUID, authorise_key: str) -> Authorisation | None:
        """Release the hold `authorise_key` made, if it made one and it is still held."""
        ...

    async def refund(self, *, key: str, tenant_id: UUID, capture_key: str) -> Refund | None:
        """Give back what `capture_key` took, if it took anything."""
        ...


class ShippingProvider(Protocol):
    async def create_shipment(
        self, *, key: str, tenant_id: UUID, order_id: UUID, parcels: int
    ) -> Booking:
        """Book the order's shipment."""
        ...

    async def cancel_shipment(
        self, *, key: str, tenant_id: UUID, create_key: str
    ) -> Booking | None:
        """Cancel the booking `create_key` made, if it made one and it is still scheduled."""
        ...
