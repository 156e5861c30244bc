"""Crash recovery: for every crash point of the test saga's definition, a real subprocess runs
the saga and kills itself there (`RUSTOK_CRASH_AT`, `os._exit`); recovery in this process
must then finish or undo it. The review's sketched orchestrator under the same crashes
leaves half-done effects and nothing to recover them from.

Execute points run a saga that would complete; compensate points run one whose last step
always fails, so the crash hits it on the way back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fixtures.saga_runner import (
    STEPS,
    Order,
    available,
    books,
    crash_points,
    create_tables,
    ledger_saga,
    place_order,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.lab import infra
from rustok_ref.saga import CRASH_EXIT_CODE, Action, CrashPoint, SagaOrchestrator, SagaState, When
from rustok_ref.storage import DbRole, UnitOfWork, create_engine, create_sessionmaker
from rustok_ref.storage.tables import saga_instances

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "fixtures" / "saga_runner.py"
STOCK = 10
LAST = STEPS[-1]
PROCESS_LIVENESS_S = 90  # a runner normally ends in about a second


@pytest.fixture
async def ledger(engine: AsyncEngine) -> AsyncEngine:
    await create_tables(engine)
    return engine


async def _order(engine: AsyncEngine) -> Order:
    return await place_order(
        engine,
        tenant_id=uuid.uuid4(),
        sku=f"sku-{uuid.uuid4().hex[:8]}",
        stock_level=STOCK,
        quantity=3,
        amount=4200,
    )


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    assert settings.database_url is not None and settings.redis_url is not None
    return {
        **os.environ,
        "RUSTOK_DATABASE_URL": settings.database_url,
        "RUSTOK_REDIS_URL": settings.redis_url,
        "RUSTOK_REDIS_PREFIX": settings.redis_prefix,
        "RUSTOK_BACKEND": "external",
        **extra,
    }


def _run_saga(
    settings: Settings, orchestrator: str, order: Order, point: CrashPoint, saga_id: uuid.UUID
) -> subprocess.CompletedProcess[str]:
    """The runner subprocess; the saga's last step always fails for a compensate point."""
    fail = ["--fail", LAST] if point.action is Action.COMPENSATE else []
    command = [sys.executable, str(RUNNER), orchestrator, order.model_dump_json()]
    return _run([*command, "--saga-id", str(saga_id), *fail], settings, crash=point)


def _run(
    command: list[str], settings: Settings, *, crash: CrashPoint | None = None
) -> subprocess.CompletedProcess[str]:
    hooks = {"RUSTOK_TEST_HOOKS": "1", "RUSTOK_CRASH_AT": str(crash)} if crash else {}
    return subprocess.run(
        command,
        # the CLI loads `saga_runner:definitions` from the fixtures folder
        env=_env(settings, PYTHONPATH=_pythonpath(), **hooks),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PROCESS_LIVENESS_S,
        check=False,
    )


def _pythonpath() -> str:
    return os.pathsep.join(filter(None, [str(RUNNER.parent), os.environ.get("PYTHONPATH")]))


def test_every_step_has_four_crash_points() -> None:
    points = crash_points()
    assert len(points) == len(set(points)) == 4 * len(STEPS)
    assert {(p.step, p.when, p.action) for p in points} == {
        (step, when, action) for step in STEPS for when in When for action in Action
    }


@pytest.mark.parametrize("point", crash_points(), ids=str)
async def test_recovery_after_a_crash_finishes_or_undoes_the_saga(
    point: CrashPoint,
    ledger: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    app_settings: Settings,
) -> None:
    order = await _order(ledger)
    saga_id = uuid.uuid4()
    undoing = point.action is Action.COMPENSATE

    crashed = _run_saga(app_settings, "persisted", order, point, saga_id)

    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    orchestrator = SagaOrchestrator(sessions, [ledger_saga(ledger)])
    left = await orchestrator.log.get(saga_id, tenant_id=order.tenant_id)
    assert left.state is (SagaState.COMPENSATING if undoing else SagaState.RUNNING)
    assert await available(ledger, order.tenant_id, order.sku) >= 0

    report = await orchestrator.recover(idle_for=timedelta(0))

    [done] = [saga for saga in report.finished if saga.id == saga_id]
    held = await books(ledger, order.order_id)
    if undoing:
        assert done.state is SagaState.COMPENSATED
        assert held.nothing, held
        assert await available(ledger, order.tenant_id, order.sku) == STOCK
    else:
        assert done.state is SagaState.COMPLETED
        assert held.everything(order), held
        assert await available(ledger, order.tenant_id, order.sku) == STOCK - order.quantity


def _sketch_outcome(point: CrashPoint) -> str:
    """What the sketch leaves: "nothing" before its first effect, after its last undo, and
    when the crash point is never reached (it does not compensate the step that failed);
    "everything" after its last effect; half-done ("partial") anywhere else."""
    first, last = STEPS[0], STEPS[-1]
    if point.action is Action.EXECUTE:
        if (point.step, point.when) == (first, When.BEFORE):
            return "nothing"
        return "everything" if (point.step, point.when) == (last, When.AFTER) else "partial"
    if point.step == last or (point.step, point.when) == (first, When.AFTER):
        return "nothing"
    return "partial"


@pytest.mark.parametrize("point", crash_points(), ids=str)
async def test_the_sketched_orchestrator_leaves_half_done_effects_nothing_can_recover(
    point: CrashPoint,
    ledger: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    app_settings: Settings,
) -> None:
    order = await _order(ledger)

    ran = _run_saga(app_settings, "sketched", order, point, uuid.uuid4())

    reached = not (point.action is Action.COMPENSATE and point.step == LAST)
    assert ran.returncode == (CRASH_EXIT_CODE if reached else 0), ran.stderr
    # nothing persisted: recovery has no saga of this order to finish or undo
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        recorded = await uow.session.scalar(
            select(func.count())
            .select_from(saga_instances)
            .where(saga_instances.c.tenant_id == order.tenant_id)
        )
    assert recorded == 0
    await SagaOrchestrator(sessions, [ledger_saga(ledger)]).recover(idle_for=timedelta(0))
    held = await books(ledger, order.order_id)
    outcome = "nothing" if held.nothing else "everything" if held.everything(order) else "partial"
    assert outcome == _sketch_outcome(point), held


async def test_rustok_ref_saga_recover_finishes_a_crashed_saga(services: infra.Services) -> None:
    with infra.run_namespace(services, "sagacli") as namespace:
        settings = Settings(
            database_url=namespace.database_url,
            redis_url=namespace.redis_url,
            redis_prefix=namespace.redis_prefix,
            backend="external",
        )
        engine = create_engine(settings)
        try:
            await create_tables(engine)
            order = await _order(engine)
            saga_id = uuid.uuid4()
            point = CrashPoint(ledger_saga(engine).name, "capture", When.AFTER, Action.EXECUTE)
            assert _run_saga(settings, "persisted", order, point, saga_id).returncode == (
                CRASH_EXIT_CODE
            )

            cli = str(Path(sys.executable).with_name("rustok-ref"))
            recovered = _run(
                [cli, "saga", "recover", "--saga", "saga_runner:definitions", "--idle-for", "0s"],
                settings,
            )

            assert recovered.returncode == 0, recovered.stderr
            assert f"{saga_id} test_checkout: completed" in recovered.stdout
            assert "recovered 1, parked 0, skipped 0" in recovered.stdout
            assert (await books(engine, order.order_id)).everything(order)
            done = await SagaOrchestrator(create_sessionmaker(engine), []).log.get(
                saga_id, tenant_id=order.tenant_id
            )
            assert (done.state, done.attempts) == (SagaState.COMPLETED, 2)
        finally:
            await engine.dispose()
