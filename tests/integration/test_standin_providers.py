"""The stand-in payment and shipping providers: idempotent by key, undo calls that are
no-ops for a key that did nothing, refusals, and faults (failure rate, latency) set per
tenant and operation in their table, failing before any effect."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce import Money
from rustok_ref.commerce.providers import (
    Fault,
    Operation,
    ProviderRejectedError,
    ProviderUnavailableError,
    StandInPayments,
    StandInShipping,
    payment_provider,
    shipping_provider,
)
from rustok_ref.errors import ValidationError
from rustok_ref.storage import UnitOfWork
from rustok_ref.storage.tables import standin_operations, standin_payments

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
AMOUNT = Money(4200, "EUR")


class Delays:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def _key() -> str:
    return f"test:{uuid.uuid4()}"


async def _rows(sessions: Sessions, tenant: uuid.UUID) -> tuple[int, int]:
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        payments = await uow.session.scalar(select(func.count()).select_from(standin_payments))
        calls = await uow.session.scalar(select(func.count()).select_from(standin_operations))
    return payments or 0, calls or 0


async def test_a_repeated_key_answers_the_first_call_and_takes_one_effect(
    sessions: Sessions,
) -> None:
    tenant, order = uuid.uuid4(), uuid.uuid4()
    provider = StandInPayments(sessions)
    key, capture_key = _key(), _key()

    first = await provider.authorise(key=key, tenant_id=tenant, order_id=order, amount=AMOUNT)
    again = await provider.authorise(key=key, tenant_id=tenant, order_id=order, amount=AMOUNT)
    taken = await provider.capture(
        key=capture_key, tenant_id=tenant, authorisation_id=first.id, amount=AMOUNT
    )
    taken_again = await provider.capture(
        key=capture_key, tenant_id=tenant, authorisation_id=first.id, amount=AMOUNT
    )

    assert again == first and first.status == "authorised"
    assert taken_again == taken and taken.amount == AMOUNT
    assert await _rows(sessions, tenant) == (1, 2)
    with pytest.raises(ProviderRejectedError, match="was used for capture"):
        await provider.void(key=capture_key, tenant_id=tenant, authorise_key=key)


async def test_an_undo_of_a_key_that_did_nothing_does_nothing(sessions: Sessions) -> None:
    tenant, order = uuid.uuid4(), uuid.uuid4()
    payments, shipping = StandInPayments(sessions), StandInShipping(sessions)

    assert await payments.void(key=_key(), tenant_id=tenant, authorise_key=_key()) is None
    assert await payments.refund(key=_key(), tenant_id=tenant, capture_key=_key()) is None
    assert await shipping.cancel_shipment(key=_key(), tenant_id=tenant, create_key=_key()) is None

    authorise, void = _key(), _key()
    held = await payments.authorise(key=authorise, tenant_id=tenant, order_id=order, amount=AMOUNT)
    voided = await payments.void(key=void, tenant_id=tenant, authorise_key=authorise)
    assert voided is not None and (voided.id, voided.status) == (held.id, "voided")
    assert await payments.void(key=void, tenant_id=tenant, authorise_key=authorise) == voided
    with pytest.raises(ProviderRejectedError, match="cannot be captured"):
        await payments.capture(
            key=_key(), tenant_id=tenant, authorisation_id=held.id, amount=AMOUNT
        )

    create, cancel = _key(), _key()
    booking = await shipping.create_shipment(
        key=create, tenant_id=tenant, order_id=order, parcels=2
    )
    assert (
        await shipping.create_shipment(key=create, tenant_id=tenant, order_id=order, parcels=2)
        == booking
    )
    cancelled = await shipping.cancel_shipment(key=cancel, tenant_id=tenant, create_key=create)
    assert cancelled is not None and (cancelled.id, cancelled.status) == (booking.id, "cancelled")
    again = _key()
    assert await shipping.cancel_shipment(key=again, tenant_id=tenant, create_key=create) is None


async def test_a_capture_beyond_the_hold_is_refused_and_a_refund_gives_it_back(
    sessions: Sessions,
) -> None:
    tenant, order = uuid.uuid4(), uuid.uuid4()
    provider = StandInPayments(sessions)
    authorise, capture, refund = _key(), _key(), _key()
    held = await provider.authorise(key=authorise, tenant_id=tenant, order_id=order, amount=AMOUNT)
    with pytest.raises(ProviderRejectedError):
        await provider.capture(
            key=capture, tenant_id=tenant, authorisation_id=held.id, amount=Money(4201, "EUR")
        )
    taken = await provider.capture(
        key=capture, tenant_id=tenant, authorisation_id=held.id, amount=AMOUNT
    )

    returned = await provider.refund(key=refund, tenant_id=tenant, capture_key=capture)

    assert returned is not None
    assert (returned.capture_id, returned.amount) == (taken.id, AMOUNT)
    assert await provider.refund(key=refund, tenant_id=tenant, capture_key=capture) == returned
    assert await provider.void(key=_key(), tenant_id=tenant, authorise_key=authorise) is None


async def test_faults_are_per_tenant_and_operation_and_fail_before_any_effect(
    sessions: Sessions,
) -> None:
    tenant, other, order = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    delays = Delays()
    rolls = iter([0.2, 0.7])
    provider = StandInPayments(sessions, chance=lambda: next(rolls), sleep=delays)
    await provider.faults.set(tenant, Operation.AUTHORISE, failure_rate=0.5, latency_ms=250)

    with pytest.raises(ProviderUnavailableError):  # 0.2 < 0.5: this call fails
        await provider.authorise(key=_key(), tenant_id=tenant, order_id=order, amount=AMOUNT)
    assert await _rows(sessions, tenant) == (0, 0)
    await provider.authorise(key=_key(), tenant_id=tenant, order_id=order, amount=AMOUNT)
    await provider.authorise(key=_key(), tenant_id=other, order_id=order, amount=AMOUNT)

    assert delays.seconds == [0.25, 0.25]
    assert await _rows(sessions, tenant) == (1, 1)
    assert await provider.faults.get(other, Operation.AUTHORISE) == Fault()
    await provider.faults.clear(tenant)
    assert (await provider.faults.get(tenant, Operation.AUTHORISE)).failure_rate == 0


@pytest.mark.parametrize(
    ("failure_rate", "latency_ms"), [(1.5, 0), (-0.1, 0), (True, 0), (0.5, -1), (0.5, 1.5)]
)
async def test_fault_settings_out_of_range_are_refused(
    sessions: Sessions, failure_rate: float, latency_ms: int
) -> None:
    with pytest.raises(ValidationError):
        await StandInPayments(sessions).faults.set(
            uuid.uuid4(), Operation.CAPTURE, failure_rate=failure_rate, latency_ms=latency_ms
        )


def test_providers_are_chosen_by_name(sessions: Sessions) -> None:
    assert isinstance(payment_provider("standin", sessions), StandInPayments)
    assert isinstance(shipping_provider("standin", sessions), StandInShipping)
    with pytest.raises(ValueError, match="known: standin"):
        payment_provider("stripe", sessions)
