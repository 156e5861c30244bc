"""The saga experiment behind 07_saga: its bookkeeping (which crash points, what counts as
reverse order, all or nothing) and, on the real services, that its runs report what the
orchestrators did: the persisted one compensates in reverse and recovers every crash, the
sketch passes no data, keeps no record and leaves half-done effects behind."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.lab.experiments import saga
from rustok_ref.saga import Action, CrashPoint, When

ORDER = saga.Order(
    order_id=uuid.uuid4(), tenant_id=uuid.uuid4(), sku="sku", quantity=3, amount=4200
)


@given(st.integers(min_value=1, max_value=40))
def test_spread_picks_distinct_points_from_first_to_last(count: int) -> None:
    points = saga.crash_points()
    picked = saga.spread(points, count)
    assert len(picked) == min(count, len(points)) == len(set(picked))
    assert picked[0] == points[0]
    if count > 1:
        assert picked[-1] == points[-1]
    assert [points.index(p) for p in picked] == sorted(points.index(p) for p in picked)


def test_there_are_four_crash_points_per_step() -> None:
    points = saga.crash_points()
    assert {(p.step, p.when, p.action) for p in points} == {
        (step, when, action) for step in saga.STEPS for when in When for action in Action
    }


@pytest.mark.parametrize(
    ("compensations", "reverse"),
    [
        (("capture", "authorise", "reserve"), True),  # the failed step's own undo first
        (("authorise", "reserve"), True),  # without it (the sketch)
        (("reserve", "authorise"), False),
        (("authorise", "capture", "reserve"), False),  # the failed step's undo not first
        (("authorise",), False),
    ],
)
def test_reverse_order_means_the_completed_steps_undone_last_first(
    compensations: tuple[str, ...], reverse: bool
) -> None:
    run = saga.FailureRun(
        "persisted",
        "capture",
        "compensated",
        compensations,
        ("authorise", "reserve"),
        "nothing",
        True,
    )
    assert run.reverse_order is reverse


@pytest.mark.parametrize(
    ("held", "outcome"),
    [
        ((0, 0, 0, 0, "cancelled"), "nothing"),
        ((0, 0, 0, 0, "pending"), "nothing"),
        ((3, 4200, 4200, 1, "confirmed"), "everything"),
        ((3, 4200, 0, 0, "pending"), "partial"),
        ((0, 0, 0, 0, "confirmed"), "partial"),
    ],
)
def test_books_are_all_or_nothing_or_partial(
    held: tuple[int, int, int, int, str], outcome: str
) -> None:
    assert saga.Books(*held, available=7).outcome(ORDER) == outcome


@pytest.fixture
async def ledger(engine: AsyncEngine) -> AsyncEngine:
    await saga.create_tables(engine)
    return engine


@pytest.mark.integration
async def test_a_failure_at_each_step_is_compensated_in_reverse_by_both(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    runs = await saga.failure_at_each_step(ledger, sessions)
    assert [(r.orchestrator, r.failed_step) for r in runs] == [
        (kind, step) for step in saga.STEPS for kind in ("persisted", "sketched")
    ]
    assert all(r.reverse_order and r.outcome == "nothing" and r.stock_ok for r in runs)
    assert {r.final_state for r in runs if r.orchestrator == "persisted"} == {"compensated"}


@pytest.mark.integration
async def test_the_sketch_passes_no_data_and_keeps_no_record_of_a_failed_compensation(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    gaps = await saga.sketch_gaps(ledger, sessions)
    assert (gaps.steps_with_previous_output, gaps.persisted_steps_with_previous_output) == (0, 3)
    assert (gaps.failed_compensations, gaps.compensation_failures_recorded) == (1, 0)
    assert gaps.persisted_parked_state == "failed"
    assert gaps.persisted_failure_reason is not None


@pytest.mark.integration
@pytest.mark.timeout(240)
async def test_a_crash_after_capture_is_recovered_by_the_persisted_one_only(
    ledger: AsyncEngine, sessions: async_sessionmaker[AsyncSession], app_settings: Settings
) -> None:
    point = CrashPoint(saga.SAGA, "capture", When.AFTER, Action.EXECUTE)
    persisted, sketched = await saga.crash_matrix(app_settings, ledger, sessions, [point])
    assert persisted.crashed and sketched.crashed
    assert (persisted.left_state, persisted.left_outcome) == ("running", "partial")
    assert (persisted.final_state, persisted.final_outcome) == ("completed", "everything")
    assert persisted.invariants_held and persisted.recovery_s is not None
    assert (sketched.left_outcome, sketched.final_outcome) == ("partial", "partial")
    assert sketched.final_state == "not persisted" and not sketched.invariants_held
