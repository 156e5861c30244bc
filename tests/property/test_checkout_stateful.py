"""The checkout's invariants under any interleaving of orders, payments, customer
cancellations and shipments, provider failures (a stand-in operation breaking and healing),
crashes (a checkout abandoned at any crash point, mid-payment or mid-recovery), recoveries
and retries of parked checkouts.

After every step: stock is never negative and what each product lost is exactly what the
checkouts hold; in our books a payment is captured exactly when its order is paid. Once the
faults heal and recovery and retry run, every checkout has completed or been compensated: a
paid order has its capture and its booking, any other order holds nothing, and nothing is
captured at the provider for an order that is not paid. Database-backed: the machine runs
its own event loop against the run's PostgreSQL, with the stand-in providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import NoReturn, TypeVar

import pytest
from fixtures.checkout_books import (
    Checkout,
    place_order,
    read_ledger,
    stock_product,
    wire_checkout,
)
from fixtures.checkout_runner import crash_points
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from rustok_ref.commerce import OrderRecord, cancel_order, ship_order
from rustok_ref.commerce.providers import Operation
from rustok_ref.config import Settings
from rustok_ref.errors import ConflictError, InvalidTransitionError
from rustok_ref.saga import CrashHook, CrashPoint, SagaState
from rustok_ref.storage import UnitOfWork, create_engine, create_sessionmaker
from rustok_ref.storage.tables import saga_instances

pytestmark = pytest.mark.integration

T = TypeVar("T")
STOCK = 6
POINTS = crash_points()
REFUSED = (InvalidTransitionError, ConflictError)


class AbandonedError(BaseException):
    """A simulated crash: the orchestrator stops where it is, writing nothing more."""


def _abandon(_: int) -> NoReturn:
    raise AbandonedError


class CheckoutMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self, app_settings: Settings) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(app_settings)
        self.sessions = create_sessionmaker(self.engine)
        # a saga type of its own: recovery here leaves other examples' checkouts alone
        self.name = f"stateful_{uuid.uuid4().hex[:8]}"
        self.tenant = uuid.uuid4()
        self.products = [
            self.run(stock_product(self.sessions, self.tenant, stock=STOCK)) for _ in range(2)
        ]
        self.initial = {product.id: STOCK for product in self.products}

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def checkout(self, crash: CrashPoint | None = None) -> Checkout:
        hook = None if crash is None else CrashHook(replace(crash, saga=self.name), exit=_abandon)
        return wire_checkout(self.sessions, name=self.name, crash_hook=hook)

    @rule(target=orders, which=st.sampled_from([0, 1]), quantity=st.integers(1, 4))
    def order(self, which: int, quantity: int) -> OrderRecord:
        return self.run(place_order(self.sessions, self.tenant, [(self.products[which], quantity)]))

    @rule(order=orders, crash=st.none() | st.sampled_from(POINTS))
    def pay(self, order: OrderRecord, crash: CrashPoint | None) -> None:
        with contextlib.suppress(AbandonedError, *REFUSED):
            self.run(self.checkout(crash).service.pay(self.tenant, order.id))

    @rule(order=orders)
    def cancel(self, order: OrderRecord) -> None:
        self.run(self._change(cancel_order, order))

    @rule(order=orders)
    def ship(self, order: OrderRecord) -> None:
        self.run(self._change(ship_order, order))

    async def _change(
        self, change: Callable[[UnitOfWork, uuid.UUID], Awaitable[object]], order: OrderRecord
    ) -> None:
        with contextlib.suppress(*REFUSED):
            async with UnitOfWork(self.sessions, tenant_id=self.tenant) as uow:
                await change(uow, order.id)
                await uow.commit()

    @rule(operation=st.sampled_from(Operation))
    def break_provider(self, operation: Operation) -> None:
        self.run(self.checkout().payments.faults.set(self.tenant, operation, failure_rate=1.0))

    @rule()
    def heal(self) -> None:
        self.run(self.checkout().payments.faults.clear(self.tenant))

    @rule(crash=st.none() | st.sampled_from(POINTS))
    def recover(self, crash: CrashPoint | None) -> None:
        with contextlib.suppress(AbandonedError):
            self.run(self.checkout(crash).orchestrator.recover(idle_for=timedelta(0)))

    @rule()
    def retry_parked(self) -> None:
        orchestrator = self.checkout().orchestrator
        for saga_id in self.run(self._parked()):
            self.run(orchestrator.retry(saga_id, tenant_id=self.tenant))

    async def _parked(self) -> list[uuid.UUID]:
        async with UnitOfWork(self.sessions, tenant_id=self.tenant) as uow:
            found = await uow.session.scalars(
                select(saga_instances.c.id).where(saga_instances.c.state == SagaState.FAILED)
            )
            return list(found)

    @invariant()
    def stock_and_payments_always_add_up(self) -> None:
        ledger = self.run(read_ledger(self.sessions, self.tenant))
        assert ledger.violations(self.initial, settled=False) == []

    def teardown(self) -> None:
        try:
            self.heal()
            self.recover(crash=None)
            self.retry_parked()
            ledger = self.run(read_ledger(self.sessions, self.tenant))
            assert ledger.violations(self.initial, settled=True) == []
        finally:
            self.run(self.engine.dispose())
            self.loop.close()


def test_checkout_invariants_hold_under_interleavings(app_settings: Settings) -> None:
    run_state_machine_as_test(
        lambda: CheckoutMachine(app_settings), settings=settings(max_examples=20)
    )
