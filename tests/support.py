"""Helpers shared by test modules (import with `from support import ...`; tests/ is on the
path as the root conftest's folder): a clock the test moves by hand and a fault proxy in
front of Redis. Each module builds its own fixtures from them."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

from rustok_ref.lab.faults import FaultProxy


class FakeClock:
    """An injected clock: it reads `now`, which moves only when the test sets or advances it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def redis_proxy_for(redis_url: str) -> FaultProxy:
    """A fault proxy in front of the Redis of `redis_url`, with a seeded random source so its
    probabilistic toxics repeat; use it as a context manager (`with ... as proxy`)."""
    parts = urlsplit(redis_url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
    return FaultProxy("redis", upstream=upstream, rng=random.Random(1))


def postgres_proxy_for(database_url: str) -> FaultProxy:
    """A fault proxy in front of the PostgreSQL of `database_url` (seeded like Redis's)."""
    parts = urlsplit(database_url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
    return FaultProxy("postgres", upstream=upstream, rng=random.Random(1))
