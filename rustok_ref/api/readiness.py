"""/readyz: whether this instance should get traffic, and, when not, which check says so.

Checks: PostgreSQL answers `SELECT 1`; Redis answers `PING`; the relay keeps up (the oldest
pending outbox row is younger than `readiness_max_relay_lag_s`); no dead-lettered event
blocks its aggregate; no breaker is open. Each check is bounded by
`readiness_check_timeout_s` and they run concurrently, so /readyz answers within about one
timeout even when a dependency hangs. The outbox checks share one backlog query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import text

from rustok_ref.api.context import ApiState
from rustok_ref.events.relay import Backlog, backlog
from rustok_ref.resilience.breaker import CircuitState

__all__ = ["Check", "Readiness", "check_readiness"]

_NOT_READY_BREAKER: Final = frozenset({CircuitState.OPEN, CircuitState.FORCED_OPEN})


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    facts: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.facts}


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: Mapping[str, Check]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check.ok]


def _answered(result: object, timeout_s: float) -> Check:
    """A check that only needs an answer: ok unless the call raised."""
    return _failed(result, timeout_s) if isinstance(result, BaseException) else Check(True)


def _failed(error: BaseException, timeout_s: float) -> Check:
    if isinstance(error, TimeoutError):
        return Check(False, {"error": f"no answer within {timeout_s} s"})
    return Check(False, {"error": f"{type(error).__name__}: {error}"})


async def _database(api: ApiState) -> None:
    async with api.services.container.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _redis(api: ApiState) -> None:
    await api.services.container.redis.ping()


def _relay_lag(found: Backlog, max_lag_s: float) -> Check:
    age = found.oldest_pending_s
    return Check(
        age is None or age < max_lag_s,
        {"pending": found.pending, "oldest_pending_s": age, "max_s": max_lag_s},
    )


def _breakers(api: ApiState) -> Check:
    breaker = api.services.redis_breaker
    return Check(breaker.state not in _NOT_READY_BREAKER, {breaker.name: breaker.state.value})


async def check_readiness(api: ApiState) -> Readiness:
    settings = api.services.container.settings
    timeout_s = settings.readiness_check_timeout_s
    database, redis, found = await asyncio.gather(
        asyncio.wait_for(_database(api), timeout_s),
        asyncio.wait_for(_redis(api), timeout_s),
        asyncio.wait_for(backlog(api.services.container.sessions), timeout_s),
        return_exceptions=True,
    )
    checks = {
        "database": _answered(database, timeout_s),
        "redis": _answered(redis, timeout_s),
    }
    if isinstance(found, Backlog):
        checks["relay_lag"] = _relay_lag(found, settings.readiness_max_relay_lag_s)
        checks["dead_letters"] = Check(found.dead == 0, {"dead": found.dead})
    else:
        checks["relay_lag"] = checks["dead_letters"] = _failed(found, timeout_s)
    checks["breakers"] = _breakers(api)
    return Readiness(checks)
