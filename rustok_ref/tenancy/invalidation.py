"""Tenant cache invalidation across instances, on the run's Redis channel
`{prefix}tenant.cache.invalidate` (the real v1's channel, inside the run's prefix).

A message is a JSON list of `[kind, value]` pairs. The repository publishes one after each
committed change; every instance runs one `InvalidationListener`, which applies messages to
its cache, and drops the whole cache on every re-subscription, because pub/sub delivers at
most once (the generic listener of `resilience.invalidation` says how).

`ResilientInvalidationPublisher` publishes through a `ResilientRedisCache` instead, so a
Redis outage does not fail the change that published: the local invalidation happens at once,
and the message is queued and replayed when Redis answers again (before any other call of
that cache reaches it). Remote instances whose subscription dropped during the outage have
already forgotten everything when they re-subscribed; those whose subscription survived (the
outage was on the publisher's path, or the breaker was still open after Redis came back) get
the replayed message, late by at most the breaker's timeout, or by how long the publisher
stays quiet unless something calls its cache's `replay()`. A message given up because the
backlog was full leaves them stale until their cache's TTL.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Final, Protocol

import redis.asyncio as aioredis

from rustok_ref.resilience.cache import ResilientRedisCache
from rustok_ref.resilience.invalidation import InvalidationListener as ChannelListener
from rustok_ref.tenancy.cache_api import TenantCacheAPI
from rustok_ref.tenancy.model import IdentifierKind, TenantIdentifier

CHANNEL: Final = "tenant.cache.invalidate"


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


class InvalidationListener(ChannelListener):
    """`async with InvalidationListener(redis, prefix, cache): ...` applies every message on
    the run's channel to `cache`, and drops all of `cache` on every re-subscription (the
    generic listener's rules, `resilience.invalidation`)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        cache: TenantCacheAPI,
        *,
        reconnect_delay: float = 1.0,
    ) -> None:
        def apply(payload: bytes) -> bool:
            try:
                identifiers = decode(payload)
            except ValueError:
                return False
            for identifier in identifiers:
                cache.invalidate(identifier)
            return True

        super().__init__(
            redis,
            channel(prefix),
            apply=apply,
            drop_all=cache.invalidate_all,
            reconnect_delay=reconnect_delay,
        )
