"""Waiting for the API's /readyz before a load run judges its steady state.

Seeding writes two events per product (created, published) that the relay must publish
before /readyz stops failing on relay lag: at the full profile that is tens of thousands
of events and minutes of relay work, in proportion to the seed. /readyz turns 200 once the
oldest unpublished event is younger than its lag bound, which can leave thousands still to
publish, and a load started then measures the relay draining the seed (its outbox lag, its
CPU); so the wait lasts until /readyz answers 200 with nothing left to publish. A fixed
bound is either too short for the largest seed or far too long for a server that will
never be ready, so the wait goes on while the relay's backlog shrinks and gives up only
when it has not shrunk for `stall_s` (or after `limit_s` in all). The last answer is kept,
so a failed steady state says which check failed and how far the relay got.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

__all__ = ["SETTLE_LIMIT_S", "SETTLE_STALL_S", "Settled", "wait_until_ready"]

SETTLE_STALL_S: Final = 120.0  # the backlog not shrinking for this long: it will not get ready
SETTLE_LIMIT_S: Final = 1800.0  # the whole wait, whatever the progress
REPORT_EVERY_S: Final = 15.0  # how often the wait says how far the relay got


@dataclass(frozen=True)
class Settled:
    """How long the wait took, and the last /readyz answer when it never settled."""

    seconds: float
    refusal: Any | None

    @property
    def ready(self) -> bool:
        return self.refusal is None


def _pending(body: Any) -> int | None:
    """The relay's backlog in a /readyz body (`checks.relay_lag.pending`), if stated."""
    with contextlib.suppress(AttributeError, KeyError, TypeError):
        pending = body["checks"]["relay_lag"]["pending"]
        return pending if isinstance(pending, int) else None
    return None


def _body(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return {"status": answer.status_code, "body": answer.text[:500]}


def wait_until_ready(
    url: str,
    say: Callable[[str], None],
    *,
    stall_s: float = SETTLE_STALL_S,
    limit_s: float = SETTLE_LIMIT_S,
    poll_s: float = 1.0,
) -> Settled:
    """Poll `url` + /readyz until it answers 200 with no backlog, the backlog stalls, or
    `limit_s` passes."""
    started = progressed = reported = time.monotonic()
    fewest: int | None = None
    last: Any = {"error": "/readyz never answered"}
    with httpx.Client(base_url=url, timeout=5.0) as client:
        while True:
            try:
                answer = client.get("/readyz")
            except httpx.HTTPError as exc:
                last = {"error": f"/readyz did not answer: {exc!r}"}
            else:
                last = _body(answer)
                if answer.status_code == 200 and not _pending(last):
                    return Settled(round(time.monotonic() - started, 3), None)
            now = time.monotonic()
            pending = _pending(last)
            if pending is not None and (fewest is None or pending < fewest):
                fewest, progressed = pending, now
            if now - started >= limit_s or now - progressed >= stall_s:
                return Settled(round(now - started, 3), last)
            if now - reported >= REPORT_EVERY_S:
                backlog = "" if pending is None else f": {pending} events still to publish"
                say(f"waiting for /readyz{backlog} ({now - started:.0f} s)")
                reported = now
            time.sleep(poll_s)
