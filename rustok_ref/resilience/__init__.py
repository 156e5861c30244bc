"""Resilience for calls to dependencies (review P1.2): the recommended circuit breaker, the
review's sketch beside it, retries for idempotent calls, and opt-in shared breaker state."""

from rustok_ref.resilience.breaker import (
    BreakerConfig,
    BreakerListener,
    BreakerMetrics,
    CircuitBreaker,
    CircuitState,
    Permit,
    Reason,
    Scheduler,
    StateChange,
    counts_as_failure,
    thread_timer,
)
from rustok_ref.resilience.retry import RetryPolicy
from rustok_ref.resilience.shared import SharedBreakerState
from rustok_ref.resilience.sketched import SketchedCircuitBreaker, SketchedMetrics

__all__ = [
    "BreakerConfig",
    "BreakerListener",
    "BreakerMetrics",
    "CircuitBreaker",
    "CircuitState",
    "Permit",
    "Reason",
    "RetryPolicy",
    "Scheduler",
    "SharedBreakerState",
    "SketchedCircuitBreaker",
    "SketchedMetrics",
    "StateChange",
    "counts_as_failure",
    "thread_timer",
]
