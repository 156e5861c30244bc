"""The saga invariants hold under any interleaving of saga starts, step and compensation
failures (a provider breaking and healing), crashes (an orchestrator abandoned at a crash
point, mid-saga or mid-recovery), recoveries and retries of parked sagas.

After every step: stock is never negative and what it lost is exactly what the orders hold;
no effect is ever taken twice; a completed saga holds everything, a compensated one nothing.
Once the faults heal and recovery and retry run, every saga is completed or compensated: no
payment captured without a confirmed order, no order confirmed without a captured payment.
Database-backed: the machine runs its own event loop against the run's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta
from typing import NoReturn, TypeVar

import pytest
from fixtures.saga_runner import (
    STEPS,
    Order,
    OutOfStockError,
    Probe,
    available,
    books,
    crash_points,
    create_tables,
    ledger_saga,
    place_order,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from rustok_ref.config import Settings
from rustok_ref.saga import (
    Action,
    CrashHook,
    CrashPoint,
    RetryPolicy,
    SagaInstance,
    SagaOrchestrator,
    SagaState,
)
from rustok_ref.storage import create_engine, create_sessionmaker

pytestmark = pytest.mark.integration

T = TypeVar("T")
STOCK = 30
ALWAYS = 1_000
POINTS = crash_points()


class AbandonedError(BaseException):
    """A simulated crash: the orchestrator stops where it is, writing nothing more."""


def _abandon(_: int) -> NoReturn:
    raise AbandonedError


async def _no_sleep(_: float) -> None:
    return None


class SagaMachine(RuleBasedStateMachine):
    def __init__(self, app_settings: Settings) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(app_settings)
        self.sessions = create_sessionmaker(self.engine)
        self.probe = Probe()
        policy = RetryPolicy(
            attempts=2, initial_interval_s=0, max_interval_s=0, non_retryable=(OutOfStockError,)
        )
        # a saga type of its own: recovery here leaves other examples' sagas alone
        self.saga = ledger_saga(
            self.engine, self.probe, retry=policy, name=f"stateful_{uuid.uuid4().hex[:8]}"
        )
        self.tenant = uuid.uuid4()
        self.sku = f"sku-{uuid.uuid4().hex[:8]}"
        self.orders: dict[uuid.UUID, Order] = {}  # saga id -> its order
        self.run(create_tables(self.engine))

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def orchestrator(self, crash: CrashPoint | None = None) -> SagaOrchestrator:
        hook = (
            None if crash is None else CrashHook(replace(crash, saga=self.saga.name), exit=_abandon)
        )
        return SagaOrchestrator(self.sessions, [self.saga], sleep=_no_sleep, crash_hook=hook)

    async def _sagas(self) -> list[SagaInstance]:
        log = self.orchestrator().log
        return [await log.get(saga_id, tenant_id=self.tenant) for saga_id in self.orders]

    @rule(quantity=st.integers(1, 3), crash=st.none() | st.sampled_from(POINTS))
    def start(self, quantity: int, crash: CrashPoint | None) -> None:
        order = self.run(
            place_order(
                self.engine,
                tenant_id=self.tenant,
                sku=self.sku,
                stock_level=STOCK,
                quantity=quantity,
                amount=100 * quantity,
            )
        )
        orchestrator = self.orchestrator(crash)
        begun = self.run(orchestrator.begin(self.saga, order, tenant_id=self.tenant))
        self.orders[begun.id] = order
        with contextlib.suppress(AbandonedError):
            self.run(orchestrator.run(begun))

    @rule(step=st.sampled_from(STEPS), action=st.sampled_from(Action))
    def break_provider(self, step: str, action: Action) -> None:
        self.probe.failures[(step, action)] = ALWAYS

    @rule()
    def heal(self) -> None:
        self.probe.failures.clear()

    @rule(crash=st.none() | st.sampled_from(POINTS))
    def recover(self, crash: CrashPoint | None) -> None:
        with contextlib.suppress(AbandonedError):
            self.run(self.orchestrator(crash).recover(idle_for=timedelta(0)))

    @rule()
    def retry_parked(self) -> None:
        orchestrator = self.orchestrator()
        for saga in self.run(self._sagas()):
            if saga.state is SagaState.FAILED:
                self.run(orchestrator.retry(saga.id, tenant_id=self.tenant))

    @invariant()
    def stock_is_never_negative_and_nothing_is_taken_twice(self) -> None:
        self.run(self._check_books(settled=False))

    async def _check_books(self, *, settled: bool) -> None:
        held_stock = 0
        for saga in await self._sagas():
            order = self.orders[saga.id]
            held = await books(self.engine, order.order_id)
            assert held.reserved in (0, order.quantity), held
            assert held.authorised in (0, order.amount), held
            assert held.captured in (0, order.amount), held
            assert held.confirmed in (0, 1), held
            held_stock += held.reserved
            if saga.state is SagaState.COMPLETED:
                assert held.everything(order), (saga, held)
            if saga.state is SagaState.COMPENSATED:
                assert held.nothing, (saga, held)
            if saga.state is SagaState.FAILED:
                assert saga.failure_reason and saga.failure_reason.startswith("compensation of")
            if settled:
                assert saga.state in (SagaState.COMPLETED, SagaState.COMPENSATED), saga
                assert (held.captured > 0) == (held.status == "confirmed"), held
        if self.orders:
            level = await available(self.engine, self.tenant, self.sku)
            assert level >= 0
            assert level + held_stock == STOCK

    def teardown(self) -> None:
        try:
            self.heal()
            self.recover(crash=None)
            self.retry_parked()
            self.run(self._check_books(settled=True))
        finally:
            self.run(self.engine.dispose())
            self.loop.close()


def test_saga_invariants_hold_under_interleavings(app_settings: Settings) -> None:
    run_state_machine_as_test(lambda: SagaMachine(app_settings), settings=settings(max_examples=20))
