"""Resilience for calls to dependencies (review P1.2): the recommended circuit breaker, the
review's sketch beside it, retries for idempotent calls, opt-in shared breaker state, and the
resilient Redis cache backend that falls back when the circuit is open."""

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
from rustok_ref.resilience.cache import (
    ResilientCacheStats,
    ResilientRedisCache,
    counts_as_outage,
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
    "ResilientCacheStats",
    "ResilientRedisCache",
    "RetryPolicy",
    "Scheduler",
    "SharedBreakerState",
    "SketchedCircuitBreaker",
    "SketchedMetrics",
    "StateChange",
    "counts_as_failure",
    "counts_as_outage",
    "thread_timer",
]
