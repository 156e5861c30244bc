"""The checkout saga on the real services with the stand-in providers: a shortage, a provider
that keeps failing at each step, a compensation that keeps failing (parked, then retried),
a customer who cancels while the checkout runs; after each, the books of both sides agree
with the order's fate. And the event-sourced payment equals its row."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from fixtures.checkout_books import Gate, place_order, read_ledger, stock_product, wire_checkout
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce import (
    SAGA_NAME,
    CheckoutStatus,
    OrderStatus,
    Step,
    cancel_order,
    get_order,
    get_payment,
    payment_history,
)
from rustok_ref.commerce.checkout import definitions
from rustok_ref.commerce.providers import Operation
from rustok_ref.config import Settings
from rustok_ref.saga import Action, Outcome, SagaState
from rustok_ref.storage import UnitOfWork
from rustok_ref.storage.tables import outbox

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
STOCK = 5


async def _saga_events(sessions: Sessions, tenant: uuid.UUID, saga_id: uuid.UUID) -> list[str]:
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        found = await uow.session.scalars(
            select(outbox.c.type).where(outbox.c.aggregateid == saga_id).order_by(outbox.c.seq)
        )
        return list(found)


async def test_a_shortage_cancels_the_order_and_takes_nothing(sessions: Sessions) -> None:
    tenant = uuid.uuid4()
    checkout = wire_checkout(sessions)
    product = await stock_product(sessions, tenant, stock=2)
    order = await place_order(sessions, tenant, [(product, 3)])

    outcome = await checkout.service.pay(tenant, order.id)

    assert outcome.status is CheckoutStatus.CANCELLED
    assert outcome.reason is not None and "insufficient stock" in outcome.reason
    ledger = await read_ledger(sessions, tenant)
    assert ledger.violations({product.id: 2}, settled=True) == []
    assert ledger.orders[order.id].status is OrderStatus.CANCELLED
    steps = await checkout.orchestrator.log.steps(outcome.saga_id, tenant_id=tenant)
    assert [(s.step_name, s.action, s.outcome) for s in steps] == [
        (Step.RESERVE_INVENTORY, Action.EXECUTE, Outcome.ERROR),  # not retried: permanent
        (Step.RESERVE_INVENTORY, Action.COMPENSATE, Outcome.COMPLETED),
    ]
    assert await _saga_events(sessions, tenant, outcome.saga_id) == [
        "saga.started",
        "saga.compensated",
    ]
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        cancelled = await get_order(uow, order.id)
    assert cancelled.cancel_reason is not None and "insufficient stock" in cancelled.cancel_reason


@pytest.mark.parametrize(
    ("operation", "failed_step"),
    [
        (Operation.AUTHORISE, Step.AUTHORISE_PAYMENT),
        (Operation.CREATE_SHIPMENT, Step.CREATE_SHIPMENT),
        (Operation.CAPTURE, Step.CAPTURE_PAYMENT),
    ],
)
async def test_a_provider_that_keeps_failing_is_retried_then_everything_is_undone(
    sessions: Sessions, operation: Operation, failed_step: Step
) -> None:
    tenant = uuid.uuid4()
    checkout = wire_checkout(sessions)
    await checkout.payments.faults.set(tenant, operation, failure_rate=1.0)
    product = await stock_product(sessions, tenant, stock=STOCK)
    order = await place_order(sessions, tenant, [(product, 2)])

    outcome = await checkout.service.pay(tenant, order.id)

    assert outcome.status is CheckoutStatus.CANCELLED
    assert outcome.reason is not None and f"{failed_step} failed" in outcome.reason
    ledger = await read_ledger(sessions, tenant)
    assert ledger.violations({product.id: STOCK}, settled=True) == []
    assert ledger.stock[product.id] == STOCK
    steps = await checkout.orchestrator.log.steps(outcome.saga_id, tenant_id=tenant)
    errors = [s for s in steps if s.outcome is Outcome.ERROR]
    assert [(s.step_name, s.attempt) for s in errors] == [(failed_step, 1), (failed_step, 2)]
    undone = [s.step_name for s in steps if s.action is Action.COMPENSATE]
    assert undone == list(reversed(list(Step)[: list(Step).index(failed_step) + 1]))


async def test_a_compensation_that_keeps_failing_parks_the_saga_until_retried(
    sessions: Sessions,
) -> None:
    tenant = uuid.uuid4()
    checkout = wire_checkout(sessions)
    faults = checkout.payments.faults
    await faults.set(tenant, Operation.CAPTURE, failure_rate=1.0)
    await faults.set(tenant, Operation.VOID, failure_rate=1.0)
    product = await stock_product(sessions, tenant, stock=STOCK)
    order = await place_order(sessions, tenant, [(product, 1)])

    parked = await checkout.service.pay(tenant, order.id)

    assert parked.status is CheckoutStatus.FAILED
    assert parked.reason is not None
    assert parked.reason.startswith(f"compensation of {Step.AUTHORISE_PAYMENT} failed")
    assert [s.id for s in await checkout.orchestrator.log.failed(limit=1_000)].count(
        parked.saga_id
    ) == 1
    ledger = await read_ledger(sessions, tenant)
    assert ledger.orders[order.id].provider_payment == "authorised"  # still held, visibly
    assert ledger.violations({product.id: STOCK}, settled=False) == []

    await faults.clear(tenant)
    retried = await checkout.orchestrator.retry(parked.saga_id, tenant_id=tenant)

    assert retried.state is SagaState.COMPENSATED
    assert (await read_ledger(sessions, tenant)).violations({product.id: STOCK}, settled=True) == []


async def test_a_customer_cancelling_during_the_checkout_gets_everything_back(
    sessions: Sessions,
) -> None:
    tenant = uuid.uuid4()
    gate = Gate()
    checkout = wire_checkout(sessions, sync_wait_s=0, provider_sleep=gate)
    service = checkout.service
    await checkout.payments.faults.set(tenant, Operation.CAPTURE, latency_ms=1)
    product = await stock_product(sessions, tenant, stock=STOCK)
    order = await place_order(sessions, tenant, [(product, 2)])

    running = await service.pay(tenant, order.id)
    assert running.status is CheckoutStatus.IN_PROGRESS
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        await cancel_order(uow, order.id, reason="changed my mind")
        await uow.commit()
    gate.opened.set()
    await service.drain()

    outcome = await service.outcome(tenant, running.saga_id)
    assert outcome.status is CheckoutStatus.CANCELLED
    ledger = await read_ledger(sessions, tenant)
    assert ledger.violations({product.id: STOCK}, settled=True) == []
    books = ledger.orders[order.id]
    assert (books.payment, books.provider_payment) == ("refunded", "refunded")
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        cancelled = await get_order(uow, order.id)
        assert cancelled.payment_id is not None
        payment = await get_payment(uow, cancelled.payment_id)
        history = await payment_history(uow, payment.id)
    assert cancelled.cancel_reason == "changed my mind"
    assert (history.version, history.state) == (payment.version, payment.state())
    assert history.state.status == "refunded"


def test_the_recovery_factory_gives_the_checkout_on_the_stand_ins(
    sessions: Sessions, app_settings: Settings
) -> None:
    [definition] = definitions(SimpleNamespace(sessions=sessions, settings=app_settings))
    assert definition.name == SAGA_NAME
    assert [step.name for step in definition.steps] == list(Step)
