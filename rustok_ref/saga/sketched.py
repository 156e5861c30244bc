"""The review's saga orchestrator as sketched (A1), kept beside the recommended one so the
crash tests and notebooks can show what it leaves behind.

Translated line by line from the review's Rust (`SagaStep` with `execute(())` and
`compensate(output)`, `SagaOrchestrator::execute`): steps run in order, each called with no
input; on the first error the completed steps are compensated in reverse with their own
outputs, and the error is returned. Its defects, on purpose (seed README, "known weak spots"):
- no data passes between steps: each step sees nothing of what the earlier ones produced;
- nothing is persisted: a crash mid-saga leaves effects that nothing can finish or undo;
- a failed compensation is only logged (`tracing::error!`), and the next one runs anyway;
- no retries, and no idempotency keys, so a re-run repeats every side effect.
Use `SagaOrchestrator` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

logger = logging.getLogger(__name__)

Output = TypeVar("Output")  # the sketch's associated type `Output`


class SketchedSagaStep(Protocol[Output]):
    """The sketch's `SagaStep` trait; its `Input` is always `()`, so none is passed."""

    async def execute(self) -> Output: ...

    async def compensate(self, output: Output) -> None: ...


class SketchedSagaOrchestrator:
    """`SagaOrchestrator { steps: Vec<Box<dyn SagaStep>> }` and its `execute`."""

    def __init__(self, steps: Sequence[SketchedSagaStep[Any]]) -> None:
        self.steps = list(steps)

    async def execute(self) -> None:
        completed: list[tuple[SketchedSagaStep[Any], Any]] = []
        for step in self.steps:
            try:
                output = await step.execute()
            except Exception:
                for done, done_output in reversed(completed):
                    try:
                        await done.compensate(done_output)
                    except Exception as comp_err:
                        logger.error("Compensation failed: %s", comp_err)
                raise
            completed.append((step, output))
