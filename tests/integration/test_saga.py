"""The saga orchestrator against the real PostgreSQL, with the checkout-shaped test saga of
`tests/fixtures/saga_runner.py`: the happy path, compensation in reverse with the data each
step produced, retries with backoff, parking and retry, idempotent re-runs, optimistic
concurrency, tenancy and the append-only step log."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import NoReturn

import pytest
from fixtures.saga_runner import (
    STEPS,
    InjectedFaultError,
    Order,
    Probe,
    available,
    books,
    create_tables,
    ledger_saga,
    place_order,
)
from pydantic import BaseModel
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.errors import ConflictError, InvalidTransitionError, NotFoundError
from rustok_ref.saga import (
    Action,
    CrashHook,
    CrashPoint,
    Outcome,
    RetryPolicy,
    SagaDefinition,
    SagaOrchestrator,
    SagaState,
    SagaStep,
    StepContext,
    When,
)
from rustok_ref.storage import UnitOfWork
from rustok_ref.storage.tables import saga_steps

pytestmark = pytest.mark.integration

ALWAYS = 1_000  # failures injected: more than any retry policy's attempts
STOCK = 10


class Sleeps:
    """The injected sleep: records each backoff delay instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class AbandonedError(BaseException):
    """Raised by a crash hook to abandon an orchestrator mid-run, as a crash would."""


def _abandon(_: int) -> NoReturn:
    raise AbandonedError


@pytest.fixture
async def ledger(engine: AsyncEngine) -> AsyncEngine:
    await create_tables(engine)
    return engine


async def _order(engine: AsyncEngine, *, stock_level: int = STOCK, quantity: int = 2) -> Order:
    return await place_order(
        engine,
        tenant_id=uuid.uuid4(),
        sku=f"sku-{uuid.uuid4().hex[:8]}",
        stock_level=stock_level,
        quantity=quantity,
        amount=1250,
    )


def _calls(probe: Probe, action: Action) -> list[str]:
    return [step for step, called, _ in probe.calls if called is action]


async def test_happy_path_runs_every_step_and_carries_the_data_forward(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    probe = Probe()
    saga = ledger_saga(ledger, probe)
    orchestrator = SagaOrchestrator(sessions, [saga], sleep=Sleeps())
    order = await _order(ledger)

    done = await orchestrator.start(saga, order, tenant_id=order.tenant_id)

    assert (done.state, done.step_index, done.compensating) == (SagaState.COMPLETED, 4, False)
    data = saga.parse(done.data)
    keys = {step: f"{done.id}:{step}:execute" for step in STEPS}
    assert (data.reservation, data.authorisation, data.capture, data.confirmed) == (
        keys["reserve"],
        keys["authorise"],
        keys["capture"],
        True,
    )
    # each step received what the steps before it produced
    received = {step: seen for step, _, seen in probe.calls}
    assert received["authorise"].reservation == keys["reserve"]
    assert received["capture"].authorisation == keys["authorise"]
    assert received["confirm"].capture == keys["capture"]
    assert (await books(ledger, order.order_id)).everything(order)
    assert await available(ledger, order.tenant_id, order.sku) == STOCK - order.quantity
    log = await orchestrator.log.steps(done.id, tenant_id=order.tenant_id)
    assert [(r.step_name, r.action, r.outcome, r.idempotency_key) for r in log] == [
        (step, Action.EXECUTE, Outcome.COMPLETED, keys[step]) for step in STEPS
    ]


@pytest.mark.parametrize("failing", STEPS)
async def test_a_failing_step_compensates_in_reverse_with_the_data_each_step_produced(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession], failing: str
) -> None:
    probe = Probe({(failing, Action.EXECUTE): ALWAYS})
    saga = ledger_saga(ledger, probe)
    order = await _order(ledger)

    done = await SagaOrchestrator(sessions, [saga], sleep=Sleeps()).start(
        saga, order, tenant_id=order.tenant_id
    )

    assert done.state is SagaState.COMPENSATED
    assert done.failure_reason is not None
    assert done.failure_reason.startswith(f"{failing} failed: InjectedFaultError")
    k = STEPS.index(failing)
    # the failed step first (its call may have landed), then every earlier one, last first
    assert _calls(probe, Action.COMPENSATE) == list(reversed(STEPS[: k + 1]))
    produced = {"reserve": "reservation", "authorise": "authorisation", "capture": "capture"}
    for step, action, seen in probe.calls:
        if action is Action.COMPENSATE:
            for earlier in STEPS[:k]:
                if earlier in produced:
                    assert getattr(seen, produced[earlier]) == f"{done.id}:{earlier}:execute"
            assert seen.undone == list(reversed(STEPS[STEPS.index(step) + 1 : k + 1]))
    assert saga.parse(done.data).undone == list(reversed(STEPS[: k + 1]))
    assert (await books(ledger, order.order_id)).nothing
    assert await available(ledger, order.tenant_id, order.sku) == STOCK


async def test_a_step_is_retried_with_capped_exponential_backoff_before_compensating(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=5, initial_interval_s=0.1, backoff=3.0, max_interval_s=0.5)
    saga = ledger_saga(ledger, Probe({("capture", Action.EXECUTE): ALWAYS}), retry=policy)
    order = await _order(ledger)

    done = await SagaOrchestrator(sessions, [saga], sleep=sleeps).start(
        saga, order, tenant_id=order.tenant_id
    )

    assert done.state is SagaState.COMPENSATED
    assert sleeps.delays == pytest.approx([0.1, 0.3, 0.5, 0.5])
    log = await SagaOrchestrator(sessions, [saga]).log.steps(done.id, tenant_id=order.tenant_id)
    errors = [r for r in log if r.outcome is Outcome.ERROR]
    assert [(r.step_name, r.attempt) for r in errors] == [("capture", n) for n in range(1, 6)]
    assert all(r.error and r.error.startswith("InjectedFaultError") for r in errors)
    assert errors[-1].at <= min(r.at for r in log if r.action is Action.COMPENSATE)


async def test_a_transient_failure_is_retried_and_the_saga_completes(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sleeps = Sleeps()
    saga = ledger_saga(ledger, Probe({("authorise", Action.EXECUTE): 2}))
    order = await _order(ledger)
    orchestrator = SagaOrchestrator(sessions, [saga], sleep=sleeps)

    done = await orchestrator.start(saga, order, tenant_id=order.tenant_id)

    assert done.state is SagaState.COMPLETED
    assert sleeps.delays == pytest.approx([0.05, 0.1])
    log = await orchestrator.log.steps(done.id, tenant_id=order.tenant_id)
    assert [(r.outcome, r.attempt) for r in log if r.step_name == "authorise"] == [
        (Outcome.ERROR, 1),
        (Outcome.ERROR, 2),
        (Outcome.COMPLETED, 3),
    ]
    assert (await books(ledger, order.order_id)).everything(order)


async def test_a_non_retryable_error_compensates_at_once(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sleeps = Sleeps()
    probe = Probe()
    saga = ledger_saga(ledger, probe)
    order = await _order(ledger, stock_level=1, quantity=2)

    done = await SagaOrchestrator(sessions, [saga], sleep=sleeps).start(
        saga, order, tenant_id=order.tenant_id
    )

    assert done.state is SagaState.COMPENSATED
    assert done.failure_reason is not None
    assert "OutOfStockError" in done.failure_reason
    assert sleeps.delays == []
    assert _calls(probe, Action.EXECUTE) == ["reserve"]
    assert (await books(ledger, order.order_id)).nothing
    assert await available(ledger, order.tenant_id, order.sku) == 1


async def test_a_compensation_that_keeps_failing_parks_the_saga_and_retry_finishes_it(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    probe = Probe({("confirm", Action.EXECUTE): ALWAYS, ("authorise", Action.COMPENSATE): ALWAYS})
    saga = ledger_saga(ledger, probe)
    orchestrator = SagaOrchestrator(sessions, [saga], sleep=Sleeps())
    order = await _order(ledger)

    parked = await orchestrator.start(saga, order, tenant_id=order.tenant_id)

    assert (parked.state, parked.step_index, parked.compensating) == (SagaState.FAILED, 1, True)
    assert parked.failure_reason is not None
    assert parked.failure_reason.startswith("compensation of authorise failed: InjectedFault")
    assert parked.id in {found.id for found in await orchestrator.log.failed()}
    held = await books(ledger, order.order_id)
    assert (held.reserved, held.authorised, held.captured, held.confirmed) == (
        order.quantity,
        order.amount,
        0,
        0,
    )
    # recovery leaves a parked saga alone: it needs the fault fixed first
    report = await orchestrator.recover(idle_for=timedelta(0))
    assert parked.id not in {found.id for found in report.finished}

    probe.failures.clear()
    retried = await orchestrator.retry(parked.id, tenant_id=order.tenant_id)

    assert (retried.state, retried.attempts) == (SagaState.COMPENSATED, 2)
    assert (await books(ledger, order.order_id)).nothing
    assert await available(ledger, order.tenant_id, order.sku) == STOCK
    assert parked.id not in {found.id for found in await orchestrator.log.failed()}
    with pytest.raises(InvalidTransitionError, match="only a failed saga"):
        await orchestrator.retry(parked.id, tenant_id=order.tenant_id)
    with pytest.raises(NotFoundError):
        await orchestrator.retry(uuid.uuid4(), tenant_id=order.tenant_id)


async def test_idempotency_keys_prevent_double_side_effects_on_rerun(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    probe = Probe()
    saga = ledger_saga(ledger, probe)
    order = await _order(ledger)
    crash = CrashHook(CrashPoint(saga.name, "capture", When.AFTER, Action.EXECUTE), exit=_abandon)
    crashing = SagaOrchestrator(sessions, [saga], crash_hook=crash)
    begun = await crashing.begin(saga, order, tenant_id=order.tenant_id)

    with pytest.raises(AbandonedError):
        await crashing.run(begun)
    report = await SagaOrchestrator(sessions, [saga]).recover(idle_for=timedelta(0))

    assert [(s.id, s.state) for s in report.finished if s.id == begun.id] == [
        (begun.id, SagaState.COMPLETED)
    ]
    captures = [call for call in probe.calls if call[:2] == ("capture", Action.EXECUTE)]
    assert len(captures) == 2  # the crashed call and the recovery's re-run, same key
    assert (await books(ledger, order.order_id)).everything(order)  # captured once
    assert await available(ledger, order.tenant_id, order.sku) == STOCK - order.quantity


async def test_begin_in_the_callers_unit_of_work_commits_or_rolls_back_with_it(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    saga = ledger_saga(ledger)
    orchestrator = SagaOrchestrator(sessions, [saga])
    order = await _order(ledger)

    async with UnitOfWork(sessions, tenant_id=order.tenant_id) as uow:
        dropped = await orchestrator.begin(saga, order, tenant_id=order.tenant_id, uow=uow)
    with pytest.raises(NotFoundError):
        await orchestrator.log.get(dropped.id, tenant_id=order.tenant_id)

    async with UnitOfWork(sessions, tenant_id=order.tenant_id) as uow:
        kept = await orchestrator.begin(saga, order, tenant_id=order.tenant_id, uow=uow)
        await uow.commit()
    assert (await orchestrator.log.get(kept.id, tenant_id=order.tenant_id)).state is (
        SagaState.RUNNING
    )
    assert (await orchestrator.run(kept)).state is SagaState.COMPLETED


async def test_two_runners_cannot_both_advance_a_saga(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    saga = ledger_saga(ledger)
    orchestrator = SagaOrchestrator(sessions, [saga])
    order = await _order(ledger)
    begun = await orchestrator.begin(saga, order, tenant_id=order.tenant_id)

    assert (await orchestrator.run(begun)).state is SagaState.COMPLETED
    with pytest.raises(ConflictError, match="another runner"):
        await orchestrator.run(begun)  # a second runner holding the version it read

    assert (await books(ledger, order.order_id)).everything(order)  # its re-run changed nothing


async def test_a_saga_is_visible_only_to_its_tenant(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    saga = ledger_saga(ledger)
    orchestrator = SagaOrchestrator(sessions, [saga])
    order = await _order(ledger)
    done = await orchestrator.start(saga, order, tenant_id=order.tenant_id)

    with pytest.raises(NotFoundError):
        await orchestrator.log.get(done.id, tenant_id=uuid.uuid4())
    assert await orchestrator.log.steps(done.id, tenant_id=uuid.uuid4()) == []


async def test_the_step_log_is_append_only(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    saga = ledger_saga(ledger)
    order = await _order(ledger)
    done = await SagaOrchestrator(sessions, [saga]).start(saga, order, tenant_id=order.tenant_id)

    for statement in (
        update(saga_steps).where(saga_steps.c.saga_id == done.id).values(outcome="error"),
        text("DELETE FROM saga_steps WHERE saga_id = :id").bindparams(id=done.id),
    ):
        async with UnitOfWork(sessions, tenant_id=order.tenant_id) as uow:
            with pytest.raises(DBAPIError, match="permission denied"):
                await uow.session.execute(statement)


async def test_begin_refuses_a_definition_the_orchestrator_does_not_know(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    order = await _order(ledger)
    with pytest.raises(ValueError, match="not registered"):
        await SagaOrchestrator(sessions, []).begin(
            ledger_saga(ledger), order, tenant_id=order.tenant_id
        )


class Plain(BaseModel):
    trail: list[str] = []


async def _note(ctx: StepContext, data: Plain) -> Plain:
    return data.model_copy(update={"trail": [*data.trail, f"{ctx.step}:{ctx.action}"]})


async def _refuse(ctx: StepContext, data: Plain) -> Plain:
    raise InjectedFaultError(ctx.idempotency_key)


async def test_a_step_with_nothing_to_compensate_is_skipped_on_the_way_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    saga = SagaDefinition(
        "notify_then_pay",
        Plain,
        (
            SagaStep("charge", _note, _note),
            SagaStep("notify", _note),  # nothing to undo
            SagaStep("pay", _refuse, _note, RetryPolicy(attempts=1)),
        ),
    )
    orchestrator = SagaOrchestrator(sessions, [saga])
    tenant = uuid.uuid4()

    done = await orchestrator.start(saga, Plain(), tenant_id=tenant)

    assert done.state is SagaState.COMPENSATED
    assert saga.parse(done.data).trail == [
        "charge:execute",
        "notify:execute",
        "pay:compensate",
        "charge:compensate",
    ]
    log = await orchestrator.log.steps(done.id, tenant_id=tenant)
    assert [(r.step_name, r.outcome) for r in log if r.action is Action.COMPENSATE] == [
        ("pay", Outcome.COMPLETED),
        ("notify", Outcome.SKIPPED),
        ("charge", Outcome.COMPLETED),
    ]


async def test_recovery_skips_a_saga_it_has_no_definition_for(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    saga = ledger_saga(ledger)
    order = await _order(ledger)
    crash = CrashHook(CrashPoint(saga.name, "reserve", When.AFTER, Action.EXECUTE), exit=_abandon)
    crashing = SagaOrchestrator(sessions, [saga], crash_hook=crash)
    left = await crashing.begin(saga, order, tenant_id=order.tenant_id)
    with pytest.raises(AbandonedError):
        await crashing.run(left)

    report = await SagaOrchestrator(sessions, []).recover(idle_for=timedelta(0))

    assert (left.id, f"no definition for {saga.name!r}") in report.skipped
    assert (await crashing.log.get(left.id, tenant_id=order.tenant_id)).state is (SagaState.RUNNING)
    finished = await SagaOrchestrator(sessions, [saga]).recover(idle_for=timedelta(0))
    assert left.id in {found.id for found in finished.finished}
    assert (await books(ledger, order.order_id)).everything(order)
