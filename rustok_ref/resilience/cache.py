"""The review's resilient Redis cache backend (P1.2): Redis behind a circuit breaker, with a
local copy to fall back on, so that a Redis outage degrades a cache instead of failing the
requests that use it. The real `RedisCacheBackend` routes every call through a breaker too, but
maps an open circuit to an error, so an outage still gives 500s (reference §2.1, §5).

What each operation does while Redis answers, and during a fault (the breaker is open, or the
call errs or outlasts `call_timeout_s`); no fault ever reaches the caller (a loader's own
errors and Redis error replies do):

- `get`: a GET; each value read (or written) is also kept in a local moka cache, stamped
  with a deadline `stale_for_s` later on the injected clock. During a fault the local copy is
  served while its deadline has not passed; past it, or with no copy, the `loader` (if given)
  answers, and otherwise the read is a miss (None), as if Redis had no such key. A remote
  miss drops the local copy and, with a `loader`, loads and writes the value back.
- `set`: SET (PX `ttl_s`) and the local copy. During a fault the write is dropped and
  counted, kept locally, and the key is queued for a DEL: once Redis answers again it must not
  serve the value this write replaced.
- `delete`: DEL and the local copy; during a fault the local copy goes and the DEL is queued.
- `incr`: INCRBY; during a fault the increment is dropped and counted (None).
- `publish`: PUBLISH; during a fault the message is queued.

The queue (the backlog, at most `max_pending` keys and as many messages; beyond that the
oldest are given up and counted) is replayed in one pipeline before any other call reaches
Redis again, under a lock, so no read overtakes the DEL that supersedes what it would read.
`replay()` does it on demand, for a process that may fall quiet after an outage. A fault is
logged once, as a warning, when the cache degrades (the counters carry the rest), and the
recovery once, at info.

The breaker counts only outages as failures (`counts_as_outage`): a Redis error reply such as
WRONGTYPE proves Redis answered, counts as a success, and reaches the caller. Give the cache a
client without redis-py's own retries (`retry=Retry(NoBackoff(), 0)`): retries belong outside
the breaker (`resilience.retry`), and the per-call timeout bounds them anyway. Several caches
on one Redis (the tenant cache's counters, the feature-flag cache) share one breaker by
passing it in, each with its own prefix, local copy and counters. There is no single flight:
callers that need one (the tenant caches) coalesce above this. It is asyncio-only, used from
the one event loop its redis.asyncio client belongs to.

Why we wrote it: the Python caches near it treat Redis as the store, with no local copy to
answer from during an outage and no breaker of ours (aiocache, cashews); the fallback caches
on PyPI (fallback-cache, FailoverCache) are sync-only with no breaker; and redis-py's own
client-side cache (RESP3 tracking) is flushed when its connection drops, so it has nothing to
serve exactly when it would be needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from moka_py import Moka
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rustok_ref.errors import CircuitBreakerOpenError
from rustok_ref.resilience.breaker import BreakerConfig, CircuitBreaker, CircuitState

__all__ = ["Loader", "ResilientCacheStats", "ResilientRedisCache", "counts_as_outage"]

logger = logging.getLogger(__name__)

Loader = Callable[[], Awaitable[bytes | str | None]]
"""Where a read goes when neither Redis nor the local copy can answer: the source of truth."""

MEMORY_SLACK: Final = 1.1
"""moka's own ttl, relative to `stale_for_s`: longer, so moka only frees memory; the clock
decides what is served."""

_OUTAGES: Final = (RedisConnectionError, RedisTimeoutError, OSError)  # OSError: TimeoutError too
_FAULTS: Final = (*_OUTAGES, CircuitBreakerOpenError)


def _closed_transport(error: BaseException) -> bool:
    """uvloop (uvicorn's loop) raises RuntimeError('... the handler is closed') where asyncio's
    own loop reports a lost connection, and redis-py lets it through: one more way Redis can
    be gone, so it counts as an outage."""
    return isinstance(error, RuntimeError) and "handler is closed" in str(error)


def counts_as_outage(error: BaseException) -> bool:
    """The breaker's failure rule here: Redis could not be reached or did not answer in time."""
    return isinstance(error, _OUTAGES)


@dataclass(frozen=True, slots=True)
class ResilientCacheStats:
    """Counters since the cache was built. A read is counted once: remote hit or miss, or
    (during a fault) local hit, fallback load or unserved."""

    remote_hits: int
    remote_misses: int
    local_hits: int  # served from the local copy during a fault
    loads: int  # remote misses the loader answered
    fallback_loads: int  # faults the loader answered (no fresh local copy)
    unserved: int  # faults answered as a miss: no fresh local copy, no loader
    rejected: int  # calls the open breaker refused: no Redis traffic at all
    errors: int  # calls that reached Redis and failed or timed out
    dropped_writes: int  # SETs and INCRs Redis never got
    deferred_deletes: int  # DELs queued during a fault (a dropped SET queues one too)
    deferred_publishes: int
    replayed: int  # queued DELs and messages delivered once Redis answered
    given_up: int  # queued ones dropped because the backlog was full
    pending: int  # queued now, not yet replayed
    breaker: CircuitState

    @property
    def fallbacks(self) -> int:
        """Reads answered without Redis."""
        return self.local_hits + self.fallback_loads + self.unserved


class ResilientRedisCache:
    """`await cache.get(key, loader)`, `set`, `delete`, `incr`, `publish`: keys and channels
    are relative to `prefix` (the run's, or a namespace inside it). Values are bytes; a str is
    stored UTF-8 encoded."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        breaker: CircuitBreaker | None = None,
        call_timeout_s: float = 0.25,
        stale_for_s: float = 60.0,
        capacity: int = 10_000,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not prefix.endswith(":"):
            raise ValueError(
                f"prefix must be the run's Redis prefix (ending in ':'), got {prefix!r}"
            )
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the cache deals in bytes: give it a client without decode_responses")
        for name, seconds in (("call_timeout_s", call_timeout_s), ("stale_for_s", stale_for_s)):
            if not seconds > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {seconds}")
        for name, count in (("capacity", capacity), ("max_pending", max_pending)):
            if count < 1:
                raise ValueError(f"{name} must be at least 1, got {count}")
        self._redis = redis
        self._prefix = prefix
        if breaker is None:
            config = BreakerConfig(is_failure=counts_as_outage)
            breaker = CircuitBreaker(f"redis-cache {prefix}", config, clock=clock)
        self._breaker = breaker
        self._call_timeout_s = call_timeout_s
        self._stale_for_s = stale_for_s
        self._max_pending = max_pending
        self._clock = clock
        self._local: Moka[str, tuple[bytes, float]] = Moka(capacity, ttl=stale_for_s * MEMORY_SLACK)
        self._pending_keys: dict[str, None] = {}  # an ordered set: oldest first
        self._pending_messages: list[tuple[str, bytes | str]] = []
        self._replay_lock = asyncio.Lock()
        self._degraded = False  # a fault since the last success; the backlog is empty unless set
        self._remote_hits = self._remote_misses = self._local_hits = 0
        self._loads = self._fallback_loads = self._unserved = 0
        self._rejected = self._errors = self._dropped_writes = 0
        self._deferred_deletes = self._deferred_publishes = self._replayed = self._given_up = 0

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    # Operations.

    async def get(
        self, key: str, loader: Loader | None = None, *, ttl_s: float | None = None
    ) -> bytes | None:
        """The value, from Redis or, during a fault, from the fresh local copy or `loader`;
        None for a miss. A remote miss with a `loader` writes the loaded value back (`ttl_s`)."""
        full = self._prefix + key
        try:
            value: bytes | None = await self._guarded(self._redis.get, full)
        except _FAULTS as fault:
            return await self._read_fallback(full, fault, loader)
        if value is not None:
            self._remote_hits += 1
            self._local.set(full, (value, self._clock() + self._stale_for_s))
            return value
        self._remote_misses += 1
        self._local.remove(full)
        if loader is None:
            return None
        loaded = await loader()
        self._loads += 1
        if loaded is None:
            return None
        await self.set(key, loaded, ttl_s)
        return _as_bytes(loaded)

    async def set(self, key: str, value: bytes | str, ttl_s: float | None = None) -> bool:
        """Store `value` in Redis (expiring after `ttl_s`, or never) and locally; False when
        Redis did not take it (dropped, counted, its key queued for a DEL)."""
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s}")
        full = self._prefix + key
        data = _as_bytes(value)
        self._local.set(full, (data, self._clock() + self._stale_for_s))
        px = None if ttl_s is None else max(1, round(ttl_s * 1000))
        try:
            await self._guarded(self._redis.set, full, data, px=px)
        except _FAULTS as fault:
            self._fault(fault)
            self._dropped_writes += 1
            self._defer_delete(full)
            return False
        return True

    async def delete(self, key: str) -> bool:
        """Forget `key` here at once and in Redis; False when the DEL was queued."""
        full = self._prefix + key
        self._local.remove(full)
        try:
            await self._guarded(self._redis.delete, full)
        except _FAULTS as fault:
            self._fault(fault)
            self._defer_delete(full)
            return False
        return True

    async def incr(self, key: str, amount: int = 1) -> int | None:
        """INCRBY: the new value, or None when the increment was dropped (counted)."""
        try:
            return int(await self._guarded(self._redis.incr, self._prefix + key, amount))
        except _FAULTS as fault:
            self._fault(fault)
            self._dropped_writes += 1
            return None

    def script(self, lua: str) -> AsyncScript:
        """Register a Lua script on this cache's client, for `run_script`."""
        return self._redis.register_script(lua)

    async def run_script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA on keys relative to the prefix, through the breaker and the time limit:
        the script's answer, or None when Redis could not run it (counted as a fault; what
        to do without the answer is the caller's policy)."""
        try:
            return await self._guarded(script, keys=[self._prefix + key for key in keys], args=args)
        except _FAULTS as fault:
            self._fault(fault)
            return None

    async def publish(self, channel: str, message: bytes | str) -> bool:
        """PUBLISH on `prefix + channel`; False when the message was queued for replay."""
        full = self._prefix + channel
        try:
            await self._guarded(self._redis.publish, full, message)
        except _FAULTS as fault:
            self._fault(fault)
            self._deferred_publishes += 1
            self._pending_messages.append((full, message))
            self._trim_backlog()
            return False
        return True

    async def replay(self) -> bool:
        """Deliver the queued DELs and messages now; True when nothing is left queued."""
        try:
            if await self._replay():
                self._recovered()
        except _FAULTS as fault:
            self._fault(fault)
            return False
        return True

    def stats(self) -> ResilientCacheStats:
        return ResilientCacheStats(
            remote_hits=self._remote_hits,
            remote_misses=self._remote_misses,
            local_hits=self._local_hits,
            loads=self._loads,
            fallback_loads=self._fallback_loads,
            unserved=self._unserved,
            rejected=self._rejected,
            errors=self._errors,
            dropped_writes=self._dropped_writes,
            deferred_deletes=self._deferred_deletes,
            deferred_publishes=self._deferred_publishes,
            replayed=self._replayed,
            given_up=self._given_up,
            pending=len(self._pending_keys) + len(self._pending_messages),
            breaker=self._breaker.state,
        )

    # Internals.

    async def _guarded(
        self, command: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """`_attempt`, the backlog first after a fault. Raises a fault (one of `_FAULTS`)
        for the caller to absorb."""
        if self._degraded:
            await self._replay()
        result = await self._attempt(command, *args, **kwargs)
        if self._degraded:
            self._recovered()
        return result

    async def _attempt(
        self, command: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """One Redis command through the breaker, cut off after `call_timeout_s`.

        The cut-off is `asyncio.timeout`'s mechanism (a loop timer cancels the task; if only
        that cancellation is pending when it lands, it becomes a TimeoutError) without its
        Timeout object and two extra awaits: on a loopback GET (~60 µs) those cost about 8%,
        this about 4%, and the benchmark's budget for the whole wrapper is 20%.
        """
        permit = self._breaker.acquire()
        task = asyncio.current_task()
        assert task is not None, "redis.asyncio runs in a task"
        expiry = _Expiry(task)
        timer = asyncio.get_running_loop().call_later(self._call_timeout_s, expiry)
        try:
            result = await command(*args, **kwargs)
        except BaseException as error:
            timer.cancel()
            if (
                expiry.fired
                and task.uncancel() <= expiry.cancelling
                and isinstance(error, asyncio.CancelledError)
            ):
                timeout = TimeoutError(f"Redis gave no answer in {self._call_timeout_s} s")
                permit.complete(timeout)
                raise timeout from error
            if _closed_transport(error):
                lost = RedisConnectionError(f"the connection to Redis is gone ({error})")
                permit.complete(lost)
                raise lost from error
            permit.complete(error)
            raise
        timer.cancel()
        if expiry.fired:  # the command swallowed the cancellation: withdraw the request
            task.uncancel()
        permit.complete(None)
        return result

    async def _read_fallback(
        self, full: str, fault: BaseException, loader: Loader | None
    ) -> bytes | None:
        self._fault(fault)
        entry = self._local.get(full)
        if entry is not None and self._clock() < entry[1]:
            self._local_hits += 1
            return entry[0]
        if loader is None:
            self._unserved += 1
            return None
        loaded = await loader()
        self._fallback_loads += 1
        if loaded is None:
            return None
        value = _as_bytes(loaded)
        self._local.set(full, (value, self._clock() + self._stale_for_s))
        return value

    async def _replay(self) -> int:
        """Send the backlog in one pipeline through the breaker; how many it held. On a fault
        the backlog is put back (ahead of anything queued meanwhile) and the fault raised."""
        async with self._replay_lock:
            keys, messages = self._pending_keys, self._pending_messages
            if not keys and not messages:
                return 0
            self._pending_keys, self._pending_messages = {}, []
            try:
                await self._attempt(self._send_backlog, list(keys), messages)
            except BaseException:
                self._pending_keys = keys | self._pending_keys
                self._pending_messages = messages + self._pending_messages
                self._trim_backlog()
                raise
            self._replayed += len(keys) + len(messages)
            return len(keys) + len(messages)

    async def _send_backlog(self, keys: list[str], messages: list[tuple[str, bytes | str]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            if keys:
                pipe.delete(*keys)
            for channel, message in messages:
                pipe.publish(channel, message)
            await pipe.execute()

    def _defer_delete(self, full: str) -> None:
        self._deferred_deletes += 1
        self._pending_keys.pop(full, None)  # re-queued as the newest
        self._pending_keys[full] = None
        self._trim_backlog()

    def _trim_backlog(self) -> None:
        while len(self._pending_keys) > self._max_pending:
            del self._pending_keys[next(iter(self._pending_keys))]
            self._given_up += 1
        excess = len(self._pending_messages) - self._max_pending
        if excess > 0:
            del self._pending_messages[:excess]
            self._given_up += excess

    def _fault(self, fault: BaseException) -> None:
        if isinstance(fault, CircuitBreakerOpenError):
            self._rejected += 1
        else:
            self._errors += 1
        if not self._degraded:
            self._degraded = True
            logger.warning(
                "Redis cache %r degraded (%s: %s): reads fall back to local copies, writes "
                "are dropped, deletes and messages queued",
                self._prefix,
                type(fault).__name__,
                fault,
            )

    def _recovered(self) -> None:
        if self._pending_keys or self._pending_messages:
            return  # a concurrent call queued more: the next one replays it
        self._degraded = False
        logger.info(
            "Redis cache %r: Redis answers again (so far %d writes dropped, %d queued "
            "operations replayed, %d given up)",
            self._prefix,
            self._dropped_writes,
            self._replayed,
            self._given_up,
        )


class _Expiry:
    """The timer callback of one `_attempt`: cancels its task, and remembers doing so."""

    __slots__ = ("cancelling", "fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.cancelling = task.cancelling()  # cancellations already requested by others
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
