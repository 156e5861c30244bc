"""The saga experiments of 07_saga: a failure at every step, a crash at every crash point
followed by recovery, and the review's sketched orchestrator under the same faults.

The subject is a checkout-shaped test saga on tables of its own (reserve stock, authorise a
payment, capture it, confirm the order), the one home of the saga the saga tests run too
(tests/fixtures/saga_runner.py names it `test_checkout`); the real checkout saga
(rustok_ref/commerce/checkout.py) will replace it in the notebook once finished. Each effect
is a ledger row keyed by the call's idempotency key, so a re-run takes effect once, and each
compensation records an undo row with the amount it gave back; the invariants (stock never
negative, all or nothing per order) are read back from them.

Crashes are real: `python -m rustok_ref.lab.experiments.saga` runs one saga in a subprocess
that `RUSTOK_TEST_HOOKS=1 RUSTOK_CRASH_AT=...` kills at the chosen point (`os._exit`); this
process then recovers it. No saga library fits: the subject is our orchestrator itself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal, cast
from uuid import UUID, uuid4

from pydantic import BaseModel
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.saga import (
    CRASH_EXIT_CODE,
    Action,
    CrashHook,
    CrashPoint,
    RetryPolicy,
    SagaDefinition,
    SagaOrchestrator,
    SagaStep,
    SketchedSagaOrchestrator,
    StepContext,
    StepFunction,
    When,
    crash_hook,
)
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import saga_instances

SAGA = "lab_checkout"
STEPS = ("reserve", "authorise", "capture", "confirm")
UNDO = {"reserve": "release", "authorise": "void", "capture": "refund", "confirm": "unconfirm"}
OUTPUT = {"reserve": "reservation", "authorise": "authorisation", "capture": "capture"}
PROCESS_LIVENESS_S = 90.0  # a runner normally ends in about two seconds
Outcome = Literal["nothing", "everything", "partial"]

tables = MetaData()
stock = Table(
    "lab_saga_stock",
    tables,
    Column("tenant_id", PG_UUID(as_uuid=True), nullable=False),
    Column("sku", Text, nullable=False),
    Column("available", Integer, nullable=False),  # no CHECK: the experiment reads it
    PrimaryKeyConstraint("tenant_id", "sku"),
)
ledger = Table(
    "lab_saga_ledger",
    tables,
    Column("key", Text, primary_key=True),  # the idempotency key of the call
    Column("tenant_id", PG_UUID(as_uuid=True), nullable=False),
    Column("order_id", PG_UUID(as_uuid=True), nullable=False),
    Column("entry", Text, nullable=False),  # a step name, or its UNDO
    Column("amount", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
orders = Table(
    "lab_saga_orders",
    tables,
    Column("order_id", PG_UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", PG_UUID(as_uuid=True), nullable=False),
    Column("status", Text, nullable=False),  # pending, confirmed, cancelled
)


class Order(BaseModel):
    """The saga's data: the order, then what each step produced, then what was undone."""

    order_id: UUID
    tenant_id: UUID
    sku: str
    quantity: int
    amount: int
    reservation: str | None = None
    authorisation: str | None = None
    capture: str | None = None
    confirmed: bool = False
    undone: list[str] = []


class InjectedFaultError(Exception):
    """A failure the experiment asked for."""


class OutOfStockError(Exception):
    """Not enough stock: retrying will not help."""


class Probe:
    """Faults to inject, as remaining failures per (step, action), and every call seen with
    the data it received."""

    def __init__(self, failures: dict[tuple[str, Action], int] | None = None) -> None:
        self.failures = dict(failures or {})
        self.calls: list[tuple[str, Action, Order]] = []

    def enter(self, ctx: StepContext, data: Order) -> None:
        self.calls.append((ctx.step, ctx.action, data))
        remaining = self.failures.get((ctx.step, ctx.action), 0)
        if remaining > 0:
            self.failures[(ctx.step, ctx.action)] = remaining - 1
            raise InjectedFaultError(f"{ctx.action} of {ctx.step} (attempt {ctx.attempt})")

    def compensations(self) -> list[str]:
        """The steps compensated, in the order their compensations were first called."""
        seen: list[str] = []
        for step, action, _ in self.calls:
            if action is Action.COMPENSATE and step not in seen:
                seen.append(step)
        return seen


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(tables.create_all)


async def place_order(
    engine: AsyncEngine,
    *,
    tenant_id: UUID | None = None,
    sku: str | None = None,
    stock_level: int = 10,
    quantity: int = 3,
    amount: int = 4200,
) -> Order:
    """A pending order for the SKU, stocked with `stock_level` on its first order; a new
    tenant and SKU unless given."""
    order = Order(
        order_id=uuid4(),
        tenant_id=uuid4() if tenant_id is None else tenant_id,
        sku=f"sku-{uuid4().hex[:8]}" if sku is None else sku,
        quantity=quantity,
        amount=amount,
    )
    async with engine.begin() as conn:
        await conn.execute(
            insert(stock)
            .values(tenant_id=order.tenant_id, sku=order.sku, available=stock_level)
            .on_conflict_do_nothing()
        )
        await conn.execute(
            insert(orders).values(
                order_id=order.order_id, tenant_id=order.tenant_id, status="pending"
            )
        )
    return order


async def _record(conn: AsyncConnection, ctx: StepContext, data: Order, amount: int) -> bool:
    """Write the call's ledger row; False when its key is already there (a re-run)."""
    entry = ctx.step if ctx.action is Action.EXECUTE else UNDO[ctx.step]
    inserted = await conn.execute(
        insert(ledger)
        .values(
            key=ctx.idempotency_key,
            tenant_id=data.tenant_id,
            order_id=data.order_id,
            entry=entry,
            amount=amount,
        )
        .on_conflict_do_nothing()
        .returning(ledger.c.key)
    )
    return inserted.first() is not None


async def _undo(conn: AsyncConnection, ctx: StepContext, data: Order) -> int:
    """Record the undo of the step's execute; the amount to give back (0 if the execute
    never took effect or this undo already ran)."""
    done = (
        await conn.execute(select(ledger.c.amount).where(ledger.c.key == ctx.execute_key))
    ).scalar_one_or_none() or 0
    return done if await _record(conn, ctx, data, done) else 0


def ledger_saga(
    engine: AsyncEngine,
    probe: Probe | None = None,
    *,
    retry: RetryPolicy | None = None,
    name: str = SAGA,
) -> SagaDefinition[Order]:
    """The test saga on `engine`; `probe` injects faults and records calls. A `name` of its
    own keeps another orchestrator's recovery away from its sagas."""
    seen = probe or Probe()
    policy = retry or RetryPolicy(
        attempts=3, initial_interval_s=0.05, max_interval_s=0.2, non_retryable=(OutOfStockError,)
    )

    async def reserve(ctx: StepContext, data: Order) -> Order:
        seen.enter(ctx, data)
        async with engine.begin() as conn:
            if await _record(conn, ctx, data, data.quantity):
                taken = await conn.execute(
                    update(stock)
                    .where(
                        stock.c.tenant_id == data.tenant_id,
                        stock.c.sku == data.sku,
                        stock.c.available >= data.quantity,
                    )
                    .values(available=stock.c.available - data.quantity)
                    .returning(stock.c.available)
                )
                if taken.first() is None:
                    raise OutOfStockError(f"{data.sku}: fewer than {data.quantity} left")
        return data.model_copy(update={"reservation": ctx.idempotency_key})

    async def release(ctx: StepContext, data: Order) -> Order:
        seen.enter(ctx, data)
        async with engine.begin() as conn:
            back = await _undo(conn, ctx, data)
            if back:
                await conn.execute(
                    update(stock)
                    .where(stock.c.tenant_id == data.tenant_id, stock.c.sku == data.sku)
                    .values(available=stock.c.available + back)
                )
        return _undone(data, ctx)

    def payment(field: str) -> tuple[StepFunction[Order], StepFunction[Order]]:
        async def execute(ctx: StepContext, data: Order) -> Order:
            seen.enter(ctx, data)
            async with engine.begin() as conn:
                await _record(conn, ctx, data, data.amount)
            return data.model_copy(update={field: ctx.idempotency_key})

        async def compensate(ctx: StepContext, data: Order) -> Order:
            seen.enter(ctx, data)
            async with engine.begin() as conn:
                await _undo(conn, ctx, data)
            return _undone(data, ctx)

        return execute, compensate

    async def confirm(ctx: StepContext, data: Order) -> Order:
        seen.enter(ctx, data)
        async with engine.begin() as conn:
            if await _record(conn, ctx, data, 1):
                await conn.execute(_set_status(data, "confirmed"))
        return data.model_copy(update={"confirmed": True})

    async def unconfirm(ctx: StepContext, data: Order) -> Order:
        seen.enter(ctx, data)
        async with engine.begin() as conn:
            await _undo(conn, ctx, data)
            await conn.execute(_set_status(data, "cancelled"))
        return _undone(data, ctx)

    authorise, void = payment("authorisation")
    capture, refund = payment("capture")
    return SagaDefinition(
        name,
        Order,
        (
            SagaStep("reserve", reserve, release, policy),
            SagaStep("authorise", authorise, void, policy),
            SagaStep("capture", capture, refund, policy),
            SagaStep("confirm", confirm, unconfirm, policy),
        ),
    )


def _undone(data: Order, ctx: StepContext) -> Order:
    return data.model_copy(update={"undone": [*data.undone, ctx.step]})


def _set_status(data: Order, status: str) -> Any:
    return update(orders).where(orders.c.order_id == data.order_id).values(status=status)


@dataclass(frozen=True)
class Effects:
    """An order's net effects: what is held, authorised, captured and confirmed now."""

    reserved: int
    authorised: int
    captured: int
    confirmed: int
    status: str

    @property
    def nothing(self) -> bool:
        held = (self.reserved, self.authorised, self.captured, self.confirmed)
        return held == (0, 0, 0, 0) and self.status != "confirmed"

    def everything(self, order: Order) -> bool:
        held = (self.reserved, self.authorised, self.captured, self.confirmed)
        return held == (order.quantity, order.amount, order.amount, 1) and (
            self.status == "confirmed"
        )

    def outcome(self, order: Order) -> Outcome:
        """All or nothing ("everything", "nothing"), or half-done ("partial")."""
        if self.nothing:
            return "nothing"
        return "everything" if self.everything(order) else "partial"


@dataclass(frozen=True)
class Books(Effects):
    """An order's net effects and the SKU's stock level."""

    available: int


async def effects(engine: AsyncEngine, order_id: UUID) -> Effects:
    """The order's net effects, read back from the ledger and its status."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ledger.c.entry, func.sum(ledger.c.amount))
                .where(ledger.c.order_id == order_id)
                .group_by(ledger.c.entry)
            )
        ).all()
        status = (
            await conn.execute(select(orders.c.status).where(orders.c.order_id == order_id))
        ).scalar_one()
    sums = {entry: int(total) for entry, total in rows}

    def net(step: str) -> int:
        return sums.get(step, 0) - sums.get(UNDO[step], 0)

    return Effects(net("reserve"), net("authorise"), net("capture"), net("confirm"), status)


async def available(engine: AsyncEngine, tenant_id: UUID, sku: str) -> int:
    """The SKU's stock level."""
    async with engine.connect() as conn:
        level = await conn.execute(
            select(stock.c.available).where(stock.c.tenant_id == tenant_id, stock.c.sku == sku)
        )
        return int(level.scalar_one())


async def books(engine: AsyncEngine, order: Order) -> Books:
    held = await effects(engine, order.order_id)
    level = await available(engine, order.tenant_id, order.sku)
    return Books(**asdict(held), available=level)


def crash_points(name: str = SAGA) -> list[CrashPoint]:
    """Every crash point of the saga, from its definition (its shape needs no engine)."""
    return ledger_saga(cast(AsyncEngine, None), name=name).crash_points()


def spread(points: Sequence[CrashPoint], count: int) -> list[CrashPoint]:
    """`count` of `points`, evenly spread, first and last included (all if count >= len)."""
    if count >= len(points):
        return list(points)
    if count == 1:
        return [points[0]]
    step = (len(points) - 1) / (count - 1)
    return [points[round(i * step)] for i in range(count)]


async def _no_sleep(_: float) -> None:
    return None


async def _persisted_count(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> int:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        found = await uow.session.scalar(
            select(func.count())
            .select_from(saga_instances)
            .where(saga_instances.c.tenant_id == tenant_id)
        )
    return int(found or 0)


# -- failures at each step, in process -------------------------------------------------


@dataclass(frozen=True)
class FailureRun:
    """One saga whose `failed_step` always fails, run by one orchestrator."""

    orchestrator: Literal["persisted", "sketched"]
    failed_step: str
    final_state: str
    compensations: tuple[str, ...]
    expected: tuple[str, ...]
    outcome: Outcome
    stock_ok: bool

    @property
    def reverse_order(self) -> bool:
        """The completed steps were compensated in exact reverse order. The persisted
        orchestrator first compensates the failed step itself (its undo gives back what a
        half-applied execute may have taken, nothing otherwise); that call may lead."""
        rest = self.compensations
        if rest[:1] == (self.failed_step,):
            rest = rest[1:]
        return rest == self.expected


async def failure_at_each_step(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> list[FailureRun]:
    """For each step, a saga whose step always fails: the persisted orchestrator (retries,
    then compensation) and the sketch, each on an order of its own."""
    runs: list[FailureRun] = []
    for index, step in enumerate(STEPS):
        expected = tuple(reversed(STEPS[:index]))
        for kind in ("persisted", "sketched"):
            order = await place_order(engine)
            probe = Probe({(step, Action.EXECUTE): 1_000})
            definition = ledger_saga(engine, probe)
            if kind == "persisted":
                orchestrator = SagaOrchestrator(sessions, [definition], sleep=_no_sleep)
                done = await orchestrator.start(definition, order, tenant_id=order.tenant_id)
                state = str(done.state)
            else:
                state = await _run_sketched(definition, order, None)
            held = await books(engine, order)
            runs.append(
                FailureRun(
                    kind,
                    step,
                    state,
                    tuple(probe.compensations()),
                    expected,
                    held.outcome(order),
                    held.available >= 0,
                )
            )
    return runs


# -- the sketch ----------------------------------------------------------------------------


class _SketchedStep:
    """One of the saga's steps as the sketch calls it: no input (each call sees only the
    order it was built with), its output handed to its compensation, crash points around."""

    def __init__(
        self, saga: str, step: SagaStep[Order], order: Order, hook: CrashHook | None
    ) -> None:
        self._saga = saga
        self._step = step
        self._order = order
        self._hook = hook
        self._run = uuid4()  # the sketch has no saga id; the ledger needs some key

    def _context(self, action: Action) -> StepContext:
        return StepContext(self._run, self._saga, self._order.tenant_id, self._step.name, action, 1)

    def _crash(self, when: When, action: Action) -> None:
        if self._hook is not None:
            self._hook(CrashPoint(self._saga, self._step.name, when, action))

    async def execute(self) -> Order:
        self._crash(When.BEFORE, Action.EXECUTE)
        output = await self._step.execute(self._context(Action.EXECUTE), self._order)
        self._crash(When.AFTER, Action.EXECUTE)
        return output

    async def compensate(self, output: Order) -> None:
        assert self._step.compensate is not None
        self._crash(When.BEFORE, Action.COMPENSATE)
        await self._step.compensate(self._context(Action.COMPENSATE), output)
        self._crash(When.AFTER, Action.COMPENSATE)


async def _run_sketched(
    definition: SagaDefinition[Order], order: Order, hook: CrashHook | None
) -> str:
    steps = [_SketchedStep(definition.name, step, order, hook) for step in definition.steps]
    try:
        await SketchedSagaOrchestrator(steps).execute()
    except InjectedFaultError:
        return "failed (error returned)"
    return "completed"


def _with_previous_output(probe: Probe) -> int:
    """Steps after the first whose execute received the previous step's output."""
    executes = {step: data for step, action, data in probe.calls if action is Action.EXECUTE}
    return sum(
        1
        for previous, step in itertools.pairwise(STEPS)
        if getattr(executes[step], OUTPUT[previous])
    )


@dataclass(frozen=True)
class SketchGaps:
    """What the sketch cannot do, counted on runs of the saga."""

    steps_with_previous_output: int
    """Steps after the first that received the previous step's output."""
    persisted_steps_with_previous_output: int
    steps_checked: int
    failed_compensations: int
    """Compensations that raised in a run whose last step failed."""
    compensation_failures_recorded: int
    """Of those, how many the sketch left a durable record of (saga rows of the tenant)."""
    persisted_parked_state: str
    """The persisted orchestrator under the same faults: the state it parks the saga in."""
    persisted_failure_reason: str | None


async def sketch_gaps(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> SketchGaps:
    """Run the sketch once cleanly (did each step see its predecessor's output?) and once
    with the last step failing and every compensation of `capture` failing (is the failed
    compensation recorded anywhere durable?); the persisted orchestrator beside it."""
    clean = Probe()
    await _run_sketched(ledger_saga(engine, clean), await place_order(engine), None)
    persisted = Probe()
    definition = ledger_saga(engine, persisted)
    order = await place_order(engine)
    await SagaOrchestrator(sessions, [definition], sleep=_no_sleep).start(
        definition, order, tenant_id=order.tenant_id
    )
    failing = ("capture", Action.COMPENSATE)
    faults = {(STEPS[-1], Action.EXECUTE): 1_000, failing: 1_000}
    sketched = Probe(faults)
    order = await place_order(engine)
    await _run_sketched(ledger_saga(engine, sketched), order, None)
    failed = sum(1 for step, action, _ in sketched.calls if (step, action) == failing)
    recorded = await _persisted_count(sessions, order.tenant_id)
    definition = ledger_saga(engine, Probe(faults))
    order = await place_order(engine)
    parked = await SagaOrchestrator(sessions, [definition], sleep=_no_sleep).start(
        definition, order, tenant_id=order.tenant_id
    )
    return SketchGaps(
        _with_previous_output(clean),
        _with_previous_output(persisted),
        len(STEPS) - 1,
        failed,
        min(recorded, failed),
        str(parked.state),
        parked.failure_reason,
    )


# -- crashes in a subprocess, then recovery ----------------------------------------------


@dataclass(frozen=True)
class CrashRun:
    """A saga killed at `point` in a subprocess, then (persisted only) recovered here."""

    orchestrator: Literal["persisted", "sketched"]
    point: str
    exit_code: int
    crashed: bool
    left_state: str
    """The saga's state as the dead process left it ("not persisted" for the sketch)."""
    left_outcome: Outcome
    final_state: str
    final_outcome: Outcome
    stock_ok: bool
    recovery_s: float | None

    @property
    def invariants_held(self) -> bool:
        """All or nothing after recovery, stock never negative."""
        return self.final_outcome != "partial" and self.stock_ok


def _run_process(
    settings: Settings, kind: str, order: Order, point: CrashPoint, saga_id: UUID
) -> subprocess.CompletedProcess[str]:
    """The runner subprocess; the saga's last step always fails for a compensate point, so
    the crash hits it on the way back."""
    assert settings.database_url is not None and settings.redis_url is not None
    fail = ["--fail", STEPS[-1]] if point.action is Action.COMPENSATE else []
    env = {
        **os.environ,
        "RUSTOK_DATABASE_URL": settings.database_url,
        "RUSTOK_REDIS_URL": settings.redis_url,
        "RUSTOK_REDIS_PREFIX": settings.redis_prefix,
        "RUSTOK_BACKEND": "external",
        "RUSTOK_TEST_HOOKS": "1",
        "RUSTOK_CRASH_AT": str(point),
    }
    command = [sys.executable, "-m", __name__, kind, order.model_dump_json()]
    return subprocess.run(
        [*command, "--saga-id", str(saga_id), *fail],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_LIVENESS_S,
        check=False,
    )


async def crash_run(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    kind: Literal["persisted", "sketched"],
    point: CrashPoint,
) -> CrashRun:
    """Kill a saga at `point` in a subprocess; then recover (the persisted one) and read
    the books. Recovery time is the `recover()` call that finished or undid it."""
    order = await place_order(engine)
    saga_id = uuid4()
    ran = await asyncio.to_thread(_run_process, settings, kind, order, point, saga_id)
    if ran.returncode not in (0, CRASH_EXIT_CODE):
        raise RuntimeError(f"saga runner failed ({ran.returncode}): {ran.stderr.strip()}")
    left = await books(engine, order)
    orchestrator = SagaOrchestrator(sessions, [ledger_saga(engine)], sleep=_no_sleep)
    recovery_s: float | None = None
    if kind == "persisted":
        left_state = str((await orchestrator.log.get(saga_id, tenant_id=order.tenant_id)).state)
        started = time.perf_counter()
        report = await orchestrator.recover(idle_for=timedelta(0))
        recovery_s = time.perf_counter() - started
        mine = [saga for saga in report.finished if saga.id == saga_id]
        final_state = str(mine[0].state) if mine else left_state
    else:
        left_state = "not persisted"
        await orchestrator.recover(idle_for=timedelta(0))  # finds nothing of this saga
        final_state = (
            "not persisted" if not await _persisted_count(sessions, order.tenant_id) else "?"
        )
    final = await books(engine, order)
    return CrashRun(
        kind,
        f"{point.step} {point.when} {point.action}",
        ran.returncode,
        ran.returncode == CRASH_EXIT_CODE,
        left_state,
        left.outcome(order),
        final_state,
        final.outcome(order),
        final.available >= 0,
        recovery_s,
    )


async def crash_matrix(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    points: Sequence[CrashPoint],
) -> list[CrashRun]:
    """`crash_run` at each point with the persisted orchestrator, then with the sketch."""
    return [
        await crash_run(settings, engine, sessions, kind, point)
        for kind in ("persisted", "sketched")
        for point in points
    ]


# -- the runner subprocess -----------------------------------------------------------------


async def _main(args: argparse.Namespace, name: str) -> str:
    from rustok_ref.bootstrap import wire  # the composition root, only in the subprocess

    order = Order.model_validate_json(args.order)
    probe = Probe({(args.fail, Action.EXECUTE): 1_000} if args.fail else None)
    hook = crash_hook(
        test_hooks=os.environ.get("RUSTOK_TEST_HOOKS") == "1",
        crash_at=os.environ.get("RUSTOK_CRASH_AT"),
    )
    async with wire(Settings()) as container:
        definition = ledger_saga(container.engine, probe, name=name)
        if args.orchestrator == "sketched":
            return f"sketched saga {await _run_sketched(definition, order, hook)}"
        orchestrator = SagaOrchestrator(
            container.sessions, [definition], sleep=_no_sleep, crash_hook=hook
        )
        done = await orchestrator.start(
            definition, order, tenant_id=order.tenant_id, saga_id=UUID(args.saga_id)
        )
        return f"saga {done.id} {done.state}"


def main(name: str = SAGA) -> None:
    """Run one saga named `name` as the command line says (the saga tests' runner calls it
    with theirs)."""
    parser = argparse.ArgumentParser(
        description="Run one lab saga (crash points: RUSTOK_CRASH_AT)."
    )
    parser.add_argument("orchestrator", choices=["persisted", "sketched"])
    parser.add_argument("order", help="the Order as JSON")
    parser.add_argument("--saga-id", default=str(uuid4()))
    parser.add_argument("--fail", choices=STEPS, help="this step's execute always fails")
    print(asyncio.run(_main(parser.parse_args(), name)))


if __name__ == "__main__":
    main()
