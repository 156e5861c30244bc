"""Saga definitions, crash points, the crash hook and the review's sketched orchestrator:
the parts with no database."""

from __future__ import annotations

import logging
import uuid
from typing import NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from rustok_ref.saga import (
    CRASH_EXIT_CODE,
    Action,
    CrashHook,
    CrashPoint,
    RetryPolicy,
    SagaDefinition,
    SagaStep,
    SketchedSagaOrchestrator,
    StepContext,
    When,
    crash_hook,
)


class Data(BaseModel):
    trail: list[str] = []


async def _step(ctx: StepContext, data: Data) -> Data:
    return data.model_copy(update={"trail": [*data.trail, ctx.step]})


def _definition(*steps: SagaStep[Data]) -> SagaDefinition[Data]:
    return SagaDefinition("checkout", Data, steps)


def test_crash_points_are_every_before_and_after_in_the_order_a_failing_run_reaches_them() -> None:
    saga = _definition(
        SagaStep("reserve", _step, _step), SagaStep("notify", _step), SagaStep("pay", _step, _step)
    )

    assert [str(point) for point in saga.crash_points()] == [
        "checkout:reserve:before:execute",
        "checkout:reserve:after:execute",
        "checkout:notify:before:execute",
        "checkout:notify:after:execute",
        "checkout:pay:before:execute",
        "checkout:pay:after:execute",
        # a step with nothing to compensate has no compensate points
        "checkout:pay:before:compensate",
        "checkout:pay:after:compensate",
        "checkout:reserve:before:compensate",
        "checkout:reserve:after:compensate",
    ]


names = st.text(st.characters(exclude_characters=":"), min_size=1).map(str.strip).filter(bool)


@given(names, names, st.sampled_from(When), st.sampled_from(Action))
def test_a_crash_point_parses_back_from_its_spec(
    saga: str, step: str, when: When, action: Action
) -> None:
    point = CrashPoint(saga, step, when, action)
    assert CrashPoint.parse(str(point)) == point


@pytest.mark.parametrize(
    "spec",
    [
        "checkout:reserve:before",
        "checkout:reserve:during:execute",
        "checkout:reserve:before:undo",
        "checkout::before:execute",
        "a:b:before:execute:extra",
    ],
)
def test_a_malformed_crash_point_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="crash point"):
        CrashPoint.parse(spec)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ((), "no steps"),
        ((SagaStep("a", _step), SagaStep("a", _step)), "repeats a step name"),
    ],
)
def test_a_malformed_definition_is_refused(steps: tuple[SagaStep[Data], ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _definition(*steps)


@pytest.mark.parametrize("name", ["", "a:b", " padded"])
def test_names_that_would_break_keys_or_crash_specs_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="without ':'"):
        SagaStep(name, _step)
    with pytest.raises(ValueError, match="without ':'"):
        SagaDefinition(name, Data, (SagaStep("a", _step),))


@pytest.mark.parametrize(
    "knobs",
    [{"attempts": 0}, {"initial_interval_s": -1}, {"max_interval_s": -1}, {"backoff": 0.5}],
)
def test_a_retry_policy_refuses_nonsense(knobs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**knobs)


def test_idempotency_keys_name_the_saga_the_step_and_the_action() -> None:
    saga_id = uuid.uuid4()
    ctx = StepContext(saga_id, "checkout", uuid.uuid4(), "pay", Action.COMPENSATE, attempt=3)
    assert ctx.idempotency_key == f"{saga_id}:pay:compensate"
    assert ctx.execute_key == f"{saga_id}:pay:execute"


def test_data_round_trips_through_its_json() -> None:
    saga = _definition(SagaStep("a", _step))
    data = Data(trail=["a", "b"])
    assert saga.parse(saga.dump(data)) == data


class CrashedError(BaseException):
    pass


def _exit(code: int) -> NoReturn:
    raise CrashedError(code)


def test_the_crash_hook_fires_only_at_its_point() -> None:
    point = CrashPoint("checkout", "pay", When.AFTER, Action.EXECUTE)
    hook = CrashHook(point, exit=_exit)

    hook(CrashPoint("checkout", "pay", When.BEFORE, Action.EXECUTE))
    with pytest.raises(CrashedError) as crashed:
        hook(point)
    assert crashed.value.args == (CRASH_EXIT_CODE,)


def test_rustok_crash_at_is_honoured_only_with_test_hooks_on() -> None:
    spec = "checkout:pay:after:execute"
    assert crash_hook(test_hooks=False, crash_at=spec) is None
    assert crash_hook(test_hooks=True, crash_at=None) is None
    hook = crash_hook(test_hooks=True, crash_at=spec)
    assert hook is not None
    assert hook.point == CrashPoint.parse(spec)


class Recorded:
    """A sketched step that records what it was called with."""

    def __init__(self, name: str, calls: list[tuple[str, object]], *, fail: str = "") -> None:
        self.name = name
        self.calls = calls
        self.fail = fail

    async def execute(self) -> str:
        self.calls.append(("execute", self.name))
        if self.fail == "execute":
            raise RuntimeError(f"{self.name} failed")
        return f"{self.name}-output"

    async def compensate(self, output: str) -> None:
        self.calls.append(("compensate", output))
        if self.fail == "compensate":
            raise RuntimeError(f"undo of {self.name} failed")


async def test_the_sketch_compensates_completed_steps_in_reverse_with_their_outputs() -> None:
    calls: list[tuple[str, object]] = []
    steps = [
        Recorded("reserve", calls),
        Recorded("authorise", calls),
        Recorded("capture", calls, fail="execute"),
    ]

    with pytest.raises(RuntimeError, match="capture failed"):
        await SketchedSagaOrchestrator(steps).execute()

    # no data passed forward; the failed step itself is not compensated
    assert calls == [
        ("execute", "reserve"),
        ("execute", "authorise"),
        ("execute", "capture"),
        ("compensate", "authorise-output"),
        ("compensate", "reserve-output"),
    ]


async def test_the_sketch_only_logs_a_failed_compensation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, object]] = []
    steps = [
        Recorded("reserve", calls),
        Recorded("authorise", calls, fail="compensate"),
        Recorded("capture", calls, fail="execute"),
    ]

    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError, match="capture failed"):
        await SketchedSagaOrchestrator(steps).execute()

    assert "Compensation failed: undo of authorise failed" in caplog.text
    assert calls[-1] == ("compensate", "reserve-output")  # and it carries on regardless
