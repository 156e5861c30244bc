"""Stand-ins for the external payment and shipping services, behind the same ports a real
provider's adapter implements (`port.py`); the only stand-ins in the product, chosen by
name (`RUSTOK_PAYMENT_PROVIDER=standin`, `RUSTOK_SHIPPING_PROVIDER=standin`).

They keep their books as an external service would on its side, but in Postgres, so they
survive a crash of the process that called them and the crash tests can read them:
authorisations (`standin_payments`), bookings (`standin_shipments`), and every call by its
idempotency key (`standin_operations`: captures and refunds are rows there). A repeated key
answers what the first call did; concurrent calls with one key are serialised by its row.

Faults come from `standin_faults`, per tenant and operation (the API exposes them): a
latency, slept before the call, and a failure rate, the chance that a call fails with
ProviderUnavailableError before it takes any effect. The fault is read in a short
transaction of its own, so a slow stand-in holds no database connection while it sleeps.

Why not a vendor's mock server (stripe-mock) or an HTTP stub (WireMock, respx): they keep
their state in memory, so it does not survive the crash the tests cause, they need a binary
or a container, and each speaks one vendor's API; these keep their books where the tests
can read them, and speak our ports.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar
from uuid import UUID, uuid4

from sqlalchemy import RowMapping, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce.money import Money, check_count
from rustok_ref.commerce.providers.port import (
    Authorisation,
    Booking,
    Capture,
    ProviderRejectedError,
    ProviderUnavailableError,
    Refund,
)
from rustok_ref.errors import ValidationError
from rustok_ref.events.validation import INT32_MAX
from rustok_ref.storage.tables import (
    standin_faults,
    standin_operations,
    standin_payments,
    standin_shipments,
)
from rustok_ref.storage.unit_of_work import UnitOfWork

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
CARRIER: Final = "Stand-in Post"


class Operation(StrEnum):
    AUTHORISE = "authorise"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    CREATE_SHIPMENT = "create_shipment"
    CANCEL_SHIPMENT = "cancel_shipment"


@dataclass(frozen=True, slots=True)
class Fault:
    failure_rate: float = 0.0
    latency_ms: int = 0


class StandInFaults:
    """The injected faults of a tenant's stand-in calls."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def set(
        self,
        tenant_id: UUID,
        operation: Operation,
        *,
        failure_rate: float = 0.0,
        latency_ms: int = 0,
    ) -> Fault:
        """Make `operation` fail with this probability (0 to 1) after `latency_ms`."""
        if isinstance(failure_rate, bool) or not 0.0 <= failure_rate <= 1.0:
            raise ValidationError(
                f"failure_rate {failure_rate!r} is not a probability",
                fields={"failure_rate": ["must be from 0 to 1"]},
            )
        check_count(latency_ms, field="latency_ms", minimum=0, maximum=INT32_MAX)
        values = {"failure_rate": float(failure_rate), "latency_ms": latency_ms}
        statement = pg_insert(standin_faults).values(
            tenant_id=tenant_id, operation=Operation(operation).value, **values
        )
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            await uow.session.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "operation"],
                    set_={**values, "updated_at": func.now()},
                )
            )
            await uow.commit()
        return Fault(float(failure_rate), latency_ms)

    async def get(self, tenant_id: UUID, operation: Operation) -> Fault:
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            row = (
                await uow.session.execute(
                    select(standin_faults.c.failure_rate, standin_faults.c.latency_ms).where(
                        standin_faults.c.tenant_id == tenant_id,
                        standin_faults.c.operation == operation.value,
                    )
                )
            ).first()
        return Fault() if row is None else Fault(row.failure_rate, row.latency_ms)

    async def clear(self, tenant_id: UUID) -> None:
        """No fault for any of the tenant's operations."""
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            await uow.session.execute(
                delete(standin_faults).where(standin_faults.c.tenant_id == tenant_id)
            )
            await uow.commit()


class _StandIn:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        chance: Callable[[], float] = random.random,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self.faults = StandInFaults(sessions)
        self._chance = chance
        self._sleep = sleep

    async def _call(
        self,
        tenant_id: UUID,
        operation: Operation,
        effect: Callable[[UnitOfWork], Awaitable[T]],
    ) -> T:
        """The fault first (latency, then perhaps a failure with no effect), then the effect
        in one transaction of the stand-in's books."""
        fault = await self.faults.get(tenant_id, operation)
        if fault.latency_ms:
            await self._sleep(fault.latency_ms / 1000)
        if fault.failure_rate and self._chance() < fault.failure_rate:
            raise ProviderUnavailableError(
                f"stand-in {operation} failed (injected, failure rate {fault.failure_rate})"
            )
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            result = await effect(uow)
            await uow.commit()
        return result

    @staticmethod
    async def _claim(
        uow: UnitOfWork, key: str, operation: Operation, **values: Any
    ) -> RowMapping | None:
        """Record the call under its key: None for a new key, else the first call's row."""
        inserted = await uow.session.execute(
            pg_insert(standin_operations)
            .values(idempotency_key=key, tenant_id=uow.tenant_id, operation=operation, **values)
            .on_conflict_do_nothing()
            .returning(standin_operations.c.idempotency_key)
        )
        if inserted.first() is not None:
            return None
        earlier = await _StandIn._used(uow, key)
        assert earlier is not None  # the conflict was on this key
        if earlier["operation"] != operation:
            raise ProviderRejectedError(f"key {key!r} was used for {earlier['operation']}")
        return earlier

    @staticmethod
    async def _used(
        uow: UnitOfWork, key: str, operation: Operation | None = None
    ) -> RowMapping | None:
        """The call made under `key` (of `operation`, when given)."""
        query = select(standin_operations).where(standin_operations.c.idempotency_key == key)
        if operation is not None:
            query = query.where(standin_operations.c.operation == operation.value)
        return (await uow.session.execute(query)).mappings().one_or_none()

    @staticmethod
    async def _settle(uow: UnitOfWork, key: str, **values: Any) -> None:
        """What an undo acted on, once it took effect."""
        await uow.session.execute(
            update(standin_operations)
            .where(standin_operations.c.idempotency_key == key)
            .values(**values)
        )


def _new_id(kind: str) -> str:
    return f"{kind}_{uuid4().hex}"


class StandInPayments(_StandIn):
    """A payment service: authorise, capture, void, refund."""

    async def authorise(
        self, *, key: str, tenant_id: UUID, order_id: UUID, amount: Money
    ) -> Authorisation:
        async def effect(uow: UnitOfWork) -> Authorisation:
            new_id = _new_id("auth")
            earlier = await self._claim(
                uow, key, Operation.AUTHORISE, reference=new_id, amount=amount.amount
            )
            if earlier is not None:
                return await self._authorisation(uow, earlier["reference"])
            row = (
                (
                    await uow.session.execute(
                        pg_insert(standin_payments)
                        .values(
                            id=new_id,
                            tenant_id=tenant_id,
                            order_id=order_id,
                            amount=amount.amount,
                            currency=amount.currency,
                            status="authorised",
                        )
                        .returning(*standin_payments.c)
                    )
                )
                .mappings()
                .one()
            )
            return _authorisation(row)

        return await self._call(tenant_id, Operation.AUTHORISE, effect)

    async def capture(
        self, *, key: str, tenant_id: UUID, authorisation_id: str, amount: Money
    ) -> Capture:
        async def effect(uow: UnitOfWork) -> Capture:
            new_id = _new_id("cap")
            earlier = await self._claim(
                uow,
                key,
                Operation.CAPTURE,
                reference=authorisation_id,
                amount=amount.amount,
                result_id=new_id,
            )
            if earlier is not None:
                held = await self._authorisation(uow, earlier["reference"])
                return Capture(
                    earlier["result_id"],
                    earlier["reference"],
                    Money(earlier["amount"], held.amount.currency),
                )
            taken = await uow.session.execute(
                update(standin_payments)
                .where(
                    standin_payments.c.id == authorisation_id,
                    standin_payments.c.status == "authorised",
                    standin_payments.c.currency == amount.currency,
                    standin_payments.c.amount >= amount.amount,
                )
                .values(status="captured", updated_at=func.now())
                .returning(standin_payments.c.id)
            )
            if taken.first() is None:
                raise ProviderRejectedError(
                    f"authorisation {authorisation_id} cannot be captured for {amount}"
                )
            return Capture(new_id, authorisation_id, amount)

        return await self._call(tenant_id, Operation.CAPTURE, effect)

    async def void(self, *, key: str, tenant_id: UUID, authorise_key: str) -> Authorisation | None:
        async def effect(uow: UnitOfWork) -> Authorisation | None:
            earlier = await self._claim(uow, key, Operation.VOID)
            if earlier is not None:
                reference = earlier["reference"]
                return None if reference is None else await self._authorisation(uow, reference)
            authorised = await self._used(uow, authorise_key, Operation.AUTHORISE)
            if authorised is None:
                return None
            row = await self._move(uow, authorised["reference"], "authorised", "voided")
            if row is None:
                return None
            await self._settle(uow, key, reference=row["id"])
            return _authorisation(row)

        return await self._call(tenant_id, Operation.VOID, effect)

    async def refund(self, *, key: str, tenant_id: UUID, capture_key: str) -> Refund | None:
        async def effect(uow: UnitOfWork) -> Refund | None:
            earlier = await self._claim(uow, key, Operation.REFUND)
            captured = await self._used(uow, capture_key, Operation.CAPTURE)
            if earlier is not None:
                if earlier["reference"] is None or captured is None:
                    return None
                held = await self._authorisation(uow, earlier["reference"])
                return _refund(earlier["result_id"], captured, held.amount.currency)
            if captured is None:
                return None
            row = await self._move(uow, captured["reference"], "captured", "refunded")
            if row is None:
                return None
            new_id = _new_id("ref")
            await self._settle(
                uow, key, reference=row["id"], amount=captured["amount"], result_id=new_id
            )
            return _refund(new_id, captured, row["currency"])

        return await self._call(tenant_id, Operation.REFUND, effect)

    @staticmethod
    async def _authorisation(uow: UnitOfWork, authorisation_id: str) -> Authorisation:
        row = (
            (
                await uow.session.execute(
                    select(standin_payments).where(standin_payments.c.id == authorisation_id)
                )
            )
            .mappings()
            .one()
        )
        return _authorisation(row)

    @staticmethod
    async def _move(
        uow: UnitOfWork, authorisation_id: str, source: str, target: str
    ) -> RowMapping | None:
        return (
            (
                await uow.session.execute(
                    update(standin_payments)
                    .where(
                        standin_payments.c.id == authorisation_id,
                        standin_payments.c.status == source,
                    )
                    .values(status=target, updated_at=func.now())
                    .returning(*standin_payments.c)
                )
            )
            .mappings()
            .one_or_none()
        )


def _authorisation(row: RowMapping) -> Authorisation:
    return Authorisation(
        row["id"], row["order_id"], Money(row["amount"], row["currency"]), row["status"]
    )


def _refund(refund_id: str, captured: RowMapping, currency: str) -> Refund:
    return Refund(
        refund_id, captured["reference"], captured["result_id"], Money(captured["amount"], currency)
    )


class StandInShipping(_StandIn):
    """A carrier: book a shipment, cancel a booking."""

    async def create_shipment(
        self, *, key: str, tenant_id: UUID, order_id: UUID, parcels: int
    ) -> Booking:
        check_count(parcels, field="parcels", minimum=1, maximum=INT32_MAX)

        async def effect(uow: UnitOfWork) -> Booking:
            new_id = _new_id("shp")
            earlier = await self._claim(uow, key, Operation.CREATE_SHIPMENT, reference=new_id)
            if earlier is not None:
                return await self._booking(uow, earlier["reference"])
            row = (
                (
                    await uow.session.execute(
                        pg_insert(standin_shipments)
                        .values(
                            id=new_id,
                            tenant_id=tenant_id,
                            order_id=order_id,
                            carrier=CARRIER,
                            tracking_number=f"SI{uuid4().hex[:16].upper()}",
                            status="scheduled",
                        )
                        .returning(*standin_shipments.c)
                    )
                )
                .mappings()
                .one()
            )
            return _booking(row)

        return await self._call(tenant_id, Operation.CREATE_SHIPMENT, effect)

    async def cancel_shipment(
        self, *, key: str, tenant_id: UUID, create_key: str
    ) -> Booking | None:
        async def effect(uow: UnitOfWork) -> Booking | None:
            earlier = await self._claim(uow, key, Operation.CANCEL_SHIPMENT)
            if earlier is not None:
                reference = earlier["reference"]
                return None if reference is None else await self._booking(uow, reference)
            created = await self._used(uow, create_key, Operation.CREATE_SHIPMENT)
            if created is None:
                return None
            row = (
                (
                    await uow.session.execute(
                        update(standin_shipments)
                        .where(
                            standin_shipments.c.id == created["reference"],
                            standin_shipments.c.status == "scheduled",
                        )
                        .values(status="cancelled", updated_at=func.now())
                        .returning(*standin_shipments.c)
                    )
                )
                .mappings()
                .one_or_none()
            )
            if row is None:
                return None
            await self._settle(uow, key, reference=row["id"])
            return _booking(row)

        return await self._call(tenant_id, Operation.CANCEL_SHIPMENT, effect)

    @staticmethod
    async def _booking(uow: UnitOfWork, booking_id: str) -> Booking:
        row = (
            (
                await uow.session.execute(
                    select(standin_shipments).where(standin_shipments.c.id == booking_id)
                )
            )
            .mappings()
            .one()
        )
        return _booking(row)


def _booking(row: RowMapping) -> Booking:
    return Booking(
        row["id"], row["order_id"], row["carrier"], row["tracking_number"], row["status"]
    )
