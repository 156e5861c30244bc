"""Retries with exponential backoff and full jitter for idempotent calls, on tenacity.

Compose them outside the breaker, `policy.retrying()(breaker.call, fn, *args)` (or
`await policy.async_retrying()(breaker.call_async, fn, *args)`): each attempt goes through the
breaker, so every failed attempt counts towards tripping it, and once it is open an attempt
costs nothing but the rejection.

Delays: before retry n (n = 1, 2, ...) the wait is uniform in [0, min(max_delay_s,
base_delay_s * 2 ** (n - 1))] (AWS's "full jitter", tenacity's `wait_random_exponential`), so
clients that failed together do not retry together. The Rust `RetryPolicy` waits
min(base * 2 ** n, max) with no jitter, so its first retry waits twice the base.

An error that says when to come back (`RetryableError`: a breaker rejection, backpressure, a
rate limit) is retried after exactly its `retry_after` if that fits in `max_delay_s`, and
otherwise not at all: the call gives up at once and the caller gets the rejection, with its
Retry-After, instead of a request held open for a dependency known to be down.

Only retry what is safe to repeat: a GET, a DEL, an idempotent write keyed by an id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from rustok_ref.errors import RetryableError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry; `attempts` counts the first call."""

    attempts: int = 3
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0
    retry_on: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, RetryableError)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if not 0 < self.base_delay_s <= self.max_delay_s:
            raise ValueError(
                f"need 0 < base_delay_s <= max_delay_s, got {self.base_delay_s}, {self.max_delay_s}"
            )

    def should_retry(self, error: BaseException) -> bool:
        if not isinstance(error, self.retry_on):
            return False
        return not isinstance(error, RetryableError) or error.retry_after <= self.max_delay_s

    def delay_s(self, state: RetryCallState) -> float:
        """The wait before the next attempt (tenacity's `wait` callback)."""
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, RetryableError):
            return float(error.retry_after)
        backoff = wait_random_exponential(multiplier=self.base_delay_s, max=self.max_delay_s)
        return backoff(state)

    def retrying(self, sleep: Callable[[float], None] = time.sleep) -> Retrying:
        """A tenacity `Retrying` for this policy; `sleep` is injectable for tests."""
        return Retrying(
            sleep=sleep,
            stop=stop_after_attempt(self.attempts),
            wait=self.delay_s,
            retry=retry_if_exception(self.should_retry),
            reraise=True,
        )

    def async_retrying(
        self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> AsyncRetrying:
        """A tenacity `AsyncRetrying` for this policy; `sleep` is injectable for tests."""
        return AsyncRetrying(
            sleep=sleep,
            stop=stop_after_attempt(self.attempts),
            wait=self.delay_s,
            retry=retry_if_exception(self.should_retry),
            reraise=True,
        )
