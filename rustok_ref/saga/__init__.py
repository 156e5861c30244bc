"""Sagas: an orchestrator with a persisted log, recovery, and the review's sketch for comparison."""

from rustok_ref.crashpoints import CRASH_EXIT_CODE
from rustok_ref.saga.crash import CrashHook, crash_hook
from rustok_ref.saga.definition import (
    Action,
    CrashPoint,
    RetryPolicy,
    SagaDefinition,
    SagaStep,
    StepContext,
    StepFunction,
    When,
    idempotency_key,
)
from rustok_ref.saga.log import (
    Outcome,
    SagaInstance,
    SagaLog,
    SagaState,
    StepRecord,
)
from rustok_ref.saga.orchestrator import RecoveryReport, SagaOrchestrator
from rustok_ref.saga.sketched import SketchedSagaOrchestrator, SketchedSagaStep

__all__ = [
    "CRASH_EXIT_CODE",
    "Action",
    "CrashHook",
    "CrashPoint",
    "Outcome",
    "RecoveryReport",
    "RetryPolicy",
    "SagaDefinition",
    "SagaInstance",
    "SagaLog",
    "SagaOrchestrator",
    "SagaState",
    "SagaStep",
    "SketchedSagaOrchestrator",
    "SketchedSagaStep",
    "StepContext",
    "StepFunction",
    "StepRecord",
    "When",
    "crash_hook",
    "idempotency_key",
]
