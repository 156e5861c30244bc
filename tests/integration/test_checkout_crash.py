"""Crash recovery of the checkout: for every crash point of the checkout saga's definition, a
real subprocess pays an order and kills itself there (`RUSTOK_CRASH_AT`); then
`rustok-ref saga recover` finishes or undoes every checkout left behind. Afterwards stock is
never negative, no payment is captured without a paid order and no order is paid without a
captured payment, and each order ends all-or-nothing. The review's sketched orchestrator
under the same crashes leaves half-done checkouts that nothing can recover.

Execute points pay an order that would succeed; compensate points one whose capture keeps
failing (a stand-in fault), so the crash hits the way back. The subprocesses of every point
run side by side (a module fixture), then one recovery runs; each test reads its point's
results.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from api_support import settings_env
from fixtures.checkout_books import Ledger, OrderBooks, read_ledger, stock_product
from fixtures.checkout_runner import crash_points
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce import (
    OrderLineRequest,
    OrderStatus,
    Step,
    create_order,
    submit_order,
)
from rustok_ref.commerce.providers import Operation, StandInFaults
from rustok_ref.config import Settings
from rustok_ref.saga import CRASH_EXIT_CODE, Action, CrashPoint, When
from rustok_ref.storage import DbRole, UnitOfWork, create_engine, create_sessionmaker
from rustok_ref.storage.tables import saga_instances

# the module fixture runs every point's process in the first test's setup (~1 min)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "fixtures" / "checkout_runner.py"
POINTS = crash_points()
STOCK, QUANTITY = 10, 3
PARALLEL = 4
PROCESS_LIVENESS_S = 90.0  # a runner normally ends in about two seconds
FIRST, LAST = Step.RESERVE_INVENTORY, Step.CAPTURE_PAYMENT


@dataclass
class CrashRun:
    """One crash point under one orchestrator: what the process did, what it left, and what
    is left after recovery."""

    point: CrashPoint
    orchestrator: str
    tenant: uuid.UUID = field(default_factory=uuid.uuid4)
    order_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    returncode: int | None = None
    output: str = ""
    sagas: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    crashed: Ledger | None = None
    recovered: Ledger | None = None

    @property
    def initial(self) -> dict[uuid.UUID, int]:
        assert self.product_id is not None
        return {self.product_id: STOCK}

    def books(self) -> OrderBooks:
        assert self.recovered is not None and self.order_id is not None
        return self.recovered.orders[self.order_id]

    def stock(self) -> int:
        assert self.recovered is not None and self.product_id is not None
        return self.recovered.stock[self.product_id]


@dataclass
class Crashes:
    runs: dict[tuple[str, CrashPoint], CrashRun]
    recovery: str


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, **settings_env(settings), **extra}


async def _process(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), PROCESS_LIVENESS_S)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def _crash_everything(settings: Settings) -> Crashes:
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    faults = StandInFaults(sessions)
    runs = {
        (kind, point): CrashRun(point, kind)
        for kind in ("persisted", "sketched")
        for point in POINTS
    }
    try:
        for run in runs.values():
            product = await stock_product(sessions, run.tenant, stock=STOCK)
            async with UnitOfWork(sessions, tenant_id=run.tenant) as uow:
                order = await create_order(
                    uow, currency="EUR", lines=[OrderLineRequest(product.sku, QUANTITY)]
                )
                await submit_order(uow, order.id)
                await uow.commit()
            run.order_id, run.product_id = order.id, product.id
            if run.point.action is Action.COMPENSATE:
                await faults.set(run.tenant, Operation.CAPTURE, failure_rate=1.0)
        slots = asyncio.Semaphore(PARALLEL)

        async def crash(run: CrashRun) -> None:
            hooks = {"RUSTOK_TEST_HOOKS": "1", "RUSTOK_CRASH_AT": str(run.point)}
            command = [sys.executable, str(RUNNER), run.orchestrator, str(run.tenant)]
            async with slots:
                run.returncode, run.output = await _process(
                    [*command, str(run.order_id)], _env(settings, **hooks)
                )

        await asyncio.gather(*(crash(run) for run in runs.values()))
        for run in runs.values():
            run.crashed = await read_ledger(sessions, run.tenant)
            run.sagas = await _sagas(sessions, run.tenant)
        cli = str(Path(sys.executable).with_name("rustok-ref"))
        recover = [cli, "saga", "recover", "--saga", "rustok_ref.commerce.checkout:definitions"]
        code, recovery = await _process([*recover, "--idle-for", "0s"], _env(settings))
        assert code == 0, recovery
        for run in runs.values():
            run.recovered = await read_ledger(sessions, run.tenant)
    finally:
        await engine.dispose()
    return Crashes(runs, recovery)


async def _sagas(
    sessions: async_sessionmaker[AsyncSession], tenant: uuid.UUID
) -> list[tuple[uuid.UUID, str]]:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        found = await uow.session.execute(
            select(saga_instances.c.id, saga_instances.c.state).where(
                saga_instances.c.tenant_id == tenant
            )
        )
        return [(saga_id, state) for saga_id, state in found]


@pytest.fixture(scope="module")
def crashes(app_settings: Settings) -> Crashes:
    return asyncio.run(_crash_everything(app_settings))


def test_every_step_has_four_crash_points() -> None:
    assert len(POINTS) == len(set(POINTS)) == 4 * len(Step)
    assert {(p.saga, p.step, p.when, p.action) for p in POINTS} == {
        ("checkout", step, when, action) for step in Step for when in When for action in Action
    }


@pytest.mark.parametrize("point", POINTS, ids=str)
def test_recovery_after_a_crash_finishes_or_undoes_the_checkout(
    point: CrashPoint, crashes: Crashes
) -> None:
    run = crashes.runs[("persisted", point)]
    undoing = point.action is Action.COMPENSATE
    assert run.returncode == CRASH_EXIT_CODE, run.output
    [(saga_id, state)] = run.sagas
    assert state == ("compensating" if undoing else "running")
    assert run.crashed is not None and run.crashed.violations(run.initial, settled=False) == []

    assert run.recovered is not None
    assert run.recovered.violations(run.initial, settled=True) == []
    ending = "compensated" if undoing else "completed"
    assert f"{saga_id} checkout: {ending}" in crashes.recovery
    books = run.books()
    assert books.saga_state == ending
    if undoing:
        assert books.status is OrderStatus.CANCELLED and books.holds_nothing, books
        assert run.stock() == STOCK
    else:
        assert books.status is OrderStatus.PAID and books.fully_paid, books
        assert run.stock() == STOCK - QUANTITY


def _sketch_reaches(point: CrashPoint) -> bool:
    """The sketch's capture always fails (no data reaches it), and the sketch never
    compensates the step that failed: it never gets past the capture's execute."""
    return point.step != LAST or (point.when, point.action) == (When.BEFORE, Action.EXECUTE)


def _sketch_leaves(point: CrashPoint) -> str:
    """ "nothing" before its first effect, after its last undo, and where the crash point is
    never reached (the sketch then undoes what it did); "partial" everywhere else."""
    edges = {(FIRST, When.BEFORE, Action.EXECUTE), (FIRST, When.AFTER, Action.COMPENSATE)}
    if not _sketch_reaches(point) or (point.step, point.when, point.action) in edges:
        return "nothing"
    return "partial"


@pytest.mark.parametrize("point", POINTS, ids=str)
def test_defect_the_sketched_orchestrator_leaves_half_done_checkouts_nothing_can_recover(
    point: CrashPoint, crashes: Crashes
) -> None:
    run = crashes.runs[("sketched", point)]
    assert run.returncode == (CRASH_EXIT_CODE if _sketch_reaches(point) else 0), run.output
    assert run.sagas == []  # nothing persisted: no saga to recover
    assert run.recovered == run.crashed  # and recovery indeed changed nothing
    assert run.recovered is not None
    books = run.books()
    assert not books.fully_paid  # the sketch never completes a checkout
    left = "nothing" if books.holds_nothing else "partial"
    assert left == _sketch_leaves(point), books
    if left == "partial":
        # stock held or money authorised for an order nobody will ever pay or cancel
        assert books.status is OrderStatus.PENDING_PAYMENT
        assert run.recovered.violations(run.initial, settled=True) != []
