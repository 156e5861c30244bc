"""Per-tenant rate limits: a token bucket in Redis, refilled and taken in one Lua script.

Why our own script: the maintained limiters (limits, pyrate-limiter, slowapi) either keep
windows in several keys with several round trips or do not answer *when* to retry; one
script per request is one round trip, atomic across every API process, and returns the
seconds until a token is back (Retry-After). Redis time (`TIME`) is the clock, so processes
with skewed clocks agree. The script runs through the resilient cache, so an outage trips
the shared "redis" breaker and later requests fail fast instead of waiting on Redis; then
the limiter fails open (or closed, as configured) and counts each time it did.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from rustok_ref.errors import RateLimitExceededError
from rustok_ref.resilience.cache import ResilientRedisCache

__all__ = ["RateLimitStats", "RateLimiter"]

logger = logging.getLogger(__name__)

# KEYS[1] bucket hash; ARGV rate (tokens/s), burst, cost. Returns {allowed, retry_after_ms}.
_TOKEN_BUCKET: Final = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now_ms
tokens = math.min(burst, tokens + math.max(0, now_ms - at) * rate / 1000)
local allowed = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait_ms}
"""


@dataclass(slots=True)
class RateLimitStats:
    allowed: int = 0
    limited: int = 0
    failed_open: int = 0
    failed_closed: int = 0


class RateLimiter:
    """`await limiter.check(tenant_id)` takes a token or raises RateLimitExceededError."""

    def __init__(
        self,
        cache: ResilientRedisCache,
        *,
        rate_per_s: float,
        burst: int,
        fail_open: bool = True,
    ) -> None:
        if not rate_per_s > 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst at least 1")
        self._cache = cache
        self._script = cache.script(_TOKEN_BUCKET)
        self._rate = rate_per_s
        self._burst = burst
        self._fail_open = fail_open
        self.stats = RateLimitStats()

    async def check(self, tenant_id: UUID, cost: int = 1) -> None:
        answer = await self._cache.run_script(
            self._script, [f"ratelimit:{tenant_id}"], [self._rate, self._burst, cost]
        )
        if answer is None:
            self._unanswered()
            return
        allowed, wait_ms = answer
        if allowed:
            self.stats.allowed += 1
            return
        self.stats.limited += 1
        raise RateLimitExceededError(
            "rate limit exceeded for this tenant",
            retry_after=max(1, math.ceil(int(wait_ms) / 1000)),
        )

    def _unanswered(self) -> None:
        if self._fail_open:
            self.stats.failed_open += 1
            if self.stats.failed_open == 1 or self.stats.failed_open % 1000 == 0:
                logger.warning(
                    "rate limits not checked, Redis unreachable: failing open (%d so far)",
                    self.stats.failed_open,
                )
            return
        self.stats.failed_closed += 1
        raise RateLimitExceededError("rate limiter unavailable (failing closed)", retry_after=1)
