"""Tenant cache invalidation across instances, on the run's Redis channel
`{prefix}tenant.cache.invalidate` (the real v1's channel, inside the run's prefix).

A message is a JSON list of `[kind, value]` pairs. The repository publishes one after each
committed change; every instance runs one `InvalidationListener`, which applies messages to
its cache. Pub/sub delivers at most once, so a listener that lost its connection may have
missed messages: each time its subscription is established again it drops its whole cache.
It notices that from the server's `subscribe` confirmation, which Redis sends for every
SUBSCRIBE: after redis-py re-subscribed on its own (it does so transparently when it
reconnects a dropped connection) as well as after the listener re-subscribed itself (when
redis-py gave up), so no reconnection goes unnoticed.

`ResilientInvalidationPublisher` publishes through a `ResilientRedisCache` instead, so a
Redis outage does not fail the change that published: the local invalidation happens at once,
and the message is queued and replayed when Redis answers again (before any other call of
that cache reaches it). Remote instances whose subscription dropped during the outage have
already forgotten everything when they re-subscribed; those whose subscription survived (the
outage was on the publisher's path, or the breaker was still open after Redis came back) get
the replayed message, late by at most the breaker's timeout, or by how long the publisher
stays quiet unless something calls its cache's `replay()`. A message given up because the
backlog was full leaves them stale until their cache's TTL.

Written here because the libraries near it invalidate something else: Redis client-side
caching (RESP3 key tracking, which redis-py supports) keeps local copies of Redis keys, not
of database rows, and caching libraries such as aiocache or cashews invalidate their own
keys, not a moka cache's entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection, Iterable
from types import TracebackType
from typing import Any, Final, Protocol, Self

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rustok_ref.resilience.cache import ResilientRedisCache
from rustok_ref.tenancy.cache_api import TenantCacheAPI
from rustok_ref.tenancy.model import IdentifierKind, TenantIdentifier

CHANNEL: Final = "tenant.cache.invalidate"

logger = logging.getLogger(__name__)


def channel(prefix: str) -> str:
    return prefix + CHANNEL


def encode(identifiers: Iterable[TenantIdentifier]) -> str:
    return json.dumps(sorted([str(i.kind), i.value] for i in identifiers))


def decode(payload: bytes | str) -> list[TenantIdentifier]:
    """The identifiers of a message; ValueError when it is not one."""
    try:
        pairs = json.loads(payload)
        if isinstance(pairs, list) and all(
            isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str) for pair in pairs
        ):
            return [TenantIdentifier(IdentifierKind(kind), value) for kind, value in pairs]
    except ValueError as exc:
        raise ValueError(f"not a tenant invalidation message: {payload!r:.200}") from exc
    raise ValueError(f"not a tenant invalidation message: {payload!r:.200}")


class InvalidationPublisher(Protocol):
    """Where the repository announces, after commit, the identifiers a change affected."""

    async def publish(self, identifiers: Collection[TenantIdentifier]) -> None: ...


class RedisInvalidationPublisher:
    """Publishes on the run's channel. It first invalidates `local` (this instance's cache),
    so the instance that made a change reads it at once, before its listener hears the
    message (v1 likewise deletes locally, then publishes)."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, *, local: TenantCacheAPI | None = None
    ) -> None:
        self._redis = redis
        self.channel = channel(prefix)
        self._local = local

    async def publish(self, identifiers: Collection[TenantIdentifier]) -> None:
        _invalidate_locally(self._local, identifiers)
        await self._redis.publish(self.channel, encode(identifiers))


class ResilientInvalidationPublisher:
    """`RedisInvalidationPublisher` through `backend` (whose prefix is the run's): it never
    raises; during an outage the message waits in the backend's backlog (module docstring)."""

    def __init__(
        self, backend: ResilientRedisCache, *, local: TenantCacheAPI | None = None
    ) -> None:
        self._backend = backend
        self.channel = channel(backend.prefix)
        self._local = local

    async def publish(self, identifiers: Collection[TenantIdentifier]) -> None:
        _invalidate_locally(self._local, identifiers)
        await self._backend.publish(CHANNEL, encode(identifiers))


def _invalidate_locally(
    local: TenantCacheAPI | None, identifiers: Collection[TenantIdentifier]
) -> None:
    if local is not None:
        for identifier in identifiers:
            local.invalidate(identifier)


class InvalidationListener:
    """`async with InvalidationListener(redis, prefix, cache): ...` applies every message on
    the channel to `cache`, and drops all of `cache` on every re-subscription.

    After a failure redis-py gave up on, it tries again every `reconnect_delay` seconds.
    The counters say what it did; `wait_subscribed` and `wait_messages` let a caller wait
    for them.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        cache: TenantCacheAPI,
        *,
        reconnect_delay: float = 1.0,
    ) -> None:
        self._redis = redis
        self.channel = channel(prefix)
        self._cache = cache
        self._reconnect_delay = reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.subscriptions = 0  # subscribe confirmations; each after the first dropped the cache
        self.messages = 0  # messages applied
        self.malformed = 0  # messages ignored
        self.failures = 0  # connection failures redis-py gave up on

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("this listener is already running")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_subscribed(self, count: int = 1) -> None:
        """Return once the subscription was confirmed `count` times."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.subscriptions >= count)

    async def wait_messages(self, count: int) -> None:
        """Return once `count` messages were applied."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.messages >= count)

    async def _run(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        await self._handle(message)
            except RedisError as exc:
                self.failures += 1
                logger.warning("tenant invalidation listener lost Redis (%s); retrying", exc)
            await asyncio.sleep(self._reconnect_delay)

    async def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self.subscriptions += 1
            if self.subscriptions > 1:
                # Messages sent while the connection was down are lost: forget everything.
                self._cache.invalidate_all()
        elif message["type"] == "message":
            try:
                identifiers = decode(message["data"])
            except ValueError:
                self.malformed += 1
                logger.warning("ignored a malformed tenant invalidation: %r", message["data"])
            else:
                for identifier in identifiers:
                    self._cache.invalidate(identifier)
                self.messages += 1
        async with self._changed:
            self._changed.notify_all()
