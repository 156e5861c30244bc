"""The outbox relay: publishes committed outbox rows to Redis Streams, in order per aggregate.

One cycle (`run_once`) claims a batch, publishes it with one pipelined round of XADDs and
settles it:

- **claim** (one statement, `FOR UPDATE SKIP LOCKED`): only the oldest not-yet-published row
  of each aggregate (its head, by `seq`) can be claimed, and only when it is pending, due
  (`next_attempt_at`) and unclaimed or its claim's lease has expired. So several relays
  never reorder an aggregate (the second row is not a head while the first is unpublished),
  and a row that is retrying or dead blocks its own aggregate, visibly, and nothing else;
- **publish**: each row's envelope goes to the stream of its aggregate type,
  `{prefix}events:{aggregatetype}`, bounded by `XADD ... MAXLEN ~`, with the event id, type,
  aggregate id, version and tenant as fields beside the envelope's JSON;
- **settle**: published rows are marked `WHERE claimed_by = me`, so a relay that was paused
  past its lease cannot mark rows another relay reclaimed (it counts them as `lost`); a row
  the stream refused (or that no longer decodes) is retried after a capped exponential
  backoff and dead-lettered (status dead) after `max_attempts`. When Redis itself is
  unreachable the batch is released untouched: an outage is not the rows' fault, so it
  spends no attempt and dead-letters nothing, and the relay backs off as a whole.

Delivery is at least once, per-aggregate ordered (Debezium's promise, reference anchors §3):
a relay that dies between XADD and marking, or loses its lease, leaves rows that are
published again; consumers dedupe on the event id (`consumer.py`). `run()` loops until its
stop event is set and finishes the batch in hand first (the CLI sets it on SIGTERM). The
relay runs as the worker role, across tenants.

Real defects fixed (reference §4.4): the claim was select-then-update with no row locks and
ordered by `created_at` across aggregates, so a retrying row was overtaken by its
successors; a dead relay's claims stayed claimed forever (here: a lease); a relay could mark
rows it no longer owned; `last_error` was not truncated to its 2048-byte column; one bad
row aborted the whole batch and left the rest claimed; and the relay's target was an
in-memory bus nobody subscribed to, so every event failed or was lost.

Why not a library: Debezium reads the WAL (Java, Kafka Connect), the outbox packages for
Python bring their own store and broker, and none claims per-aggregate heads with leases on
our table; the relay is three statements and a pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NoReturn, cast
from uuid import UUID

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.crashpoints import CRASH_EXIT_CODE, RELAY, requested
from rustok_ref.errors import RustokError
from rustok_ref.events.dispatcher import LatencySummary, _Reservoir
from rustok_ref.events.envelope import METADATA_FIELDS, Catalogue, EventEnvelope
from rustok_ref.events.outbox import OutboxStatus, envelope_from_row
from rustok_ref.storage.roles import DbRole
from rustok_ref.storage.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
BROKER_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
"""Failures of Redis itself (not of one row): the batch is released, no attempt is spent."""


def stream_name(prefix: str, aggregate_type: str) -> str:
    """The stream an aggregate type's events go to (under the run's Redis prefix)."""
    return f"{prefix}events:{aggregate_type}"


def truncate_utf8(message: str, max_bytes: int) -> str:
    """`message` cut to at most `max_bytes` UTF-8 bytes, never inside a character."""
    return message.encode()[:max_bytes].decode(errors="ignore")


def stream_fields(envelope: EventEnvelope) -> dict[str, bytes | str]:
    """A stream entry's fields: the envelope's JSON, and beside it what a reader may want
    without parsing it (event id, type, aggregate id and version, tenant)."""
    version = envelope.aggregate_version
    return {
        "id": str(envelope.id),
        "type": envelope.event_type,
        "aggregateid": str(envelope.aggregate_id),
        "version": "" if version is None else str(version),
        "tenant": str(envelope.tenant_id),
        "envelope": envelope.to_json(),
    }


def relay_crash_after(*, test_hooks: bool, crash_at: str | None) -> int | None:
    """k from `RUSTOK_CRASH_AT=relay:<k>` (kill the relay after its k-th XADD, before it
    marks that batch), or None outside test runs or when another process is named."""
    point = requested(test_hooks=test_hooks, crash_at=crash_at)
    if point is None or point[0] != RELAY:
        return None
    count = point[1]
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"crash point {crash_at!r} is not relay:<k> with k >= 1")
    return int(count)


class RelayConfig(BaseModel):
    """The relay's knobs (defaults follow RusToK's `RelayConfig` where it has one)."""

    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(default=100, ge=1, description="Rows claimed per cycle.")
    max_attempts: int = Field(default=5, ge=1, description="Publish attempts before dead.")
    backoff_base_s: float = Field(default=1.0, ge=0, description="Delay after a 1st failure.")
    backoff_max_s: float = Field(default=60.0, ge=0, description="Cap of the doubling delay.")
    lease_s: float = Field(default=30.0, ge=0, description="A claim older than this is free.")
    stream_maxlen: int = Field(default=100_000, ge=1, description="XADD MAXLEN ~ bound.")
    idle_s: float = Field(default=0.1, gt=0, description="Pause when nothing was due.")
    outage_backoff_base_s: float = Field(default=0.2, gt=0, description="Redis/DB down.")
    outage_backoff_max_s: float = Field(default=5.0, gt=0)
    last_error_bytes: int = Field(default=2048, ge=1, description="Cap of last_error.")
    lag_reservoir: int = Field(default=4_096, ge=1, description="Latest lags kept.")


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """A claimed outbox row: what publishing needs, and who held it before (a reclaim)."""

    id: UUID
    seq: int
    aggregatetype: str
    aggregateid: UUID
    aggregate_version: int | None
    tenant_id: UUID
    row: Mapping[str, Any] = field(repr=False)
    previous_owner: str | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one cycle did to its batch."""

    claimed: int
    published: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    """Rows published but not marked: another relay reclaimed them (this one's lease ran out)."""
    released: int = 0
    """Rows handed back untouched because Redis was unreachable."""
    broker_error: str | None = None


@dataclass(frozen=True, slots=True)
class RelayMetrics:
    """Counters since the relay was built; `lag` is published_at - occurred_at (seconds)."""

    worker_id: str
    batches: int
    claimed: int
    reclaimed: int
    xadds: int
    published: int
    retried: int
    dead: int
    lost: int
    released: int
    broker_errors: int
    elapsed_s: float
    lag: LatencySummary

    @property
    def throughput(self) -> float:
        """Rows published per second of the relay's life (0 before the first cycle)."""
        return self.published / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits in the outbox: pending rows, dead rows, and the oldest pending row's age."""

    pending: int
    dead: int
    oldest_pending_s: float | None


_ROW_COLUMNS = (
    "id, seq, aggregatetype, aggregateid, aggregate_version, type, payload, "
    + ", ".join(METADATA_FIELDS)
)


@dataclass(frozen=True)
class _Statements:
    claim: Any
    published: Any
    failed: Any
    release: Any


def _statements(now: str) -> _Statements:
    """The relay's SQL with `now` as the database's clock or an injected `:now`."""
    returning = ", ".join(f"o.{name.strip()}" for name in _ROW_COLUMNS.split(","))
    return _Statements(
        claim=text(
            f"""
            WITH heads AS (
                SELECT DISTINCT ON (aggregatetype, aggregateid) id
                FROM outbox
                WHERE status <> 'published'
                ORDER BY aggregatetype, aggregateid, seq
            ), due AS (
                SELECT o.id, o.claimed_by AS previous_owner
                FROM outbox AS o JOIN heads USING (id)
                WHERE o.status = 'pending'
                  AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= {now})
                  AND (o.claimed_at IS NULL
                       OR o.claimed_at <= {now} - make_interval(secs => :lease))
                ORDER BY o.seq
                LIMIT :batch
                FOR UPDATE OF o SKIP LOCKED
            )
            UPDATE outbox AS o SET claimed_by = :me, claimed_at = {now}
            FROM due WHERE o.id = due.id
            RETURNING {returning}, due.previous_owner
            """
        ),
        published=text(
            f"""
            UPDATE outbox SET status = 'published', published_at = {now},
                claimed_by = NULL, claimed_at = NULL, next_attempt_at = NULL, last_error = NULL
            WHERE id = ANY(:ids) AND claimed_by = :me
            RETURNING EXTRACT(EPOCH FROM published_at - occurred_at) AS lag_s
            """
        ),
        failed=text(
            f"""
            UPDATE outbox AS o SET
                attempts = o.attempts + 1,
                last_error = f.error,
                status = CASE WHEN o.attempts + 1 >= :max_attempts THEN 'dead' ELSE 'pending' END,
                next_attempt_at = CASE WHEN o.attempts + 1 >= :max_attempts THEN NULL
                    ELSE {now} + make_interval(
                        secs => LEAST(:base * power(2, LEAST(o.attempts, 16)), :cap)) END,
                claimed_by = NULL, claimed_at = NULL
            FROM unnest(CAST(:ids AS uuid[]), CAST(:errors AS text[])) AS f(id, error)
            WHERE o.id = f.id AND o.claimed_by = :me
            RETURNING o.status
            """
        ),
        release=text(
            "UPDATE outbox SET claimed_by = NULL, claimed_at = NULL "
            "WHERE id = ANY(:ids) AND claimed_by = :me"
        ),
    )


class OutboxRelay:
    """`await relay.run(stop)` until `stop` is set, or `await relay.run_once()` per cycle.

    `clock` replaces the database's `now()` (claims, leases, backoff, published_at) so tests
    can move time without sleeping; `crash_after` (from `relay_crash_after`) kills the
    process with `crash_exit(CRASH_EXIT_CODE)` after that many XADDs, before marking.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis,
        *,
        prefix: str,
        config: RelayConfig | None = None,
        worker_id: str | None = None,
        catalogue: Catalogue | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.perf_counter,
        crash_after: int | None = None,
        crash_exit: Callable[[int], NoReturn] = os._exit,
    ) -> None:
        self.config = config or RelayConfig()
        self.worker_id = worker_id or f"relay-{uuid.uuid4()}"
        self._sessions = sessions
        self._redis = redis
        self._prefix = prefix
        self._catalogue = catalogue
        self._clock = clock
        self._monotonic = monotonic
        self._crash_after = crash_after
        self._crash_exit = crash_exit
        self._sql = _statements("now()" if clock is None else "CAST(:now AS timestamptz)")
        self._lags = _Reservoir(self.config.lag_reservoir)
        self._started: float | None = None
        self._counts = dict.fromkeys(
            (
                "batches",
                "claimed",
                "reclaimed",
                "xadds",
                "published",
                "retried",
                "dead",
                "lost",
                "released",
                "broker_errors",
            ),
            0,
        )

    # -- one cycle ---------------------------------------------------------------------------

    async def run_once(self) -> BatchResult:
        """Claim a batch, publish it, settle it."""
        if self._started is None:
            self._started = self._monotonic()
        batch = await self.claim()
        if not batch:
            return BatchResult(claimed=0)
        self._counts["batches"] += 1
        try:
            published, failures = await self.publish(batch)
        except BROKER_ERRORS as exc:
            return await self._release(batch, exc)
        return await self.settle(len(batch), published, failures)

    async def claim(self) -> list[ClaimedRow]:
        """Claim up to `batch_size` due aggregate heads, oldest first."""
        params = {
            "me": self.worker_id,
            "batch": self.config.batch_size,
            "lease": self.config.lease_s,
            **self._now(),
        }
        async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            rows = (await uow.session.execute(self._sql.claim, params)).mappings().all()
            await uow.commit()
        batch = sorted(
            (
                ClaimedRow(
                    id=row["id"],
                    seq=row["seq"],
                    aggregatetype=row["aggregatetype"],
                    aggregateid=row["aggregateid"],
                    aggregate_version=row["aggregate_version"],
                    tenant_id=row["tenant_id"],
                    row=cast(Mapping[str, Any], row),
                    previous_owner=row["previous_owner"],
                )
                for row in rows
            ),
            key=lambda claimed: claimed.seq,
        )
        self._counts["claimed"] += len(batch)
        self._counts["reclaimed"] += sum(1 for row in batch if row.previous_owner is not None)
        return batch

    async def publish(self, batch: Sequence[ClaimedRow]) -> tuple[list[UUID], dict[UUID, str]]:
        """XADD each row to its stream in one pipeline; returns the published ids and the
        error of each row that was not. Raises one of `BROKER_ERRORS` if Redis is down."""
        failures: dict[UUID, str] = {}
        entries: list[tuple[ClaimedRow, str, dict[str, bytes | str]]] = []
        for claimed in batch:
            try:
                envelope = envelope_from_row(claimed.row, self._catalogue)
            except RustokError as exc:  # a row that no longer decodes: retried, then dead
                failures[claimed.id] = str(exc)
                continue
            stream = stream_name(self._prefix, envelope.aggregate_type)
            entries.append((claimed, stream, stream_fields(envelope)))
        crash = False
        if self._crash_after is not None:
            room = self._crash_after - self._counts["xadds"]
            crash = room <= len(entries)
            entries = entries[: max(room, 0)]
        pipe = self._redis.pipeline(transaction=False)
        for _, stream, fields in entries:
            pipe.xadd(stream, fields, maxlen=self.config.stream_maxlen, approximate=True)  # type: ignore[arg-type]
        results = await pipe.execute(raise_on_error=False) if entries else []
        self._counts["xadds"] += len(entries)
        if crash:
            self._crash()
        published: list[UUID] = []
        for (claimed, _, _), result in zip(entries, results, strict=True):
            if isinstance(result, BROKER_ERRORS):
                raise result
            if isinstance(result, Exception):
                failures[claimed.id] = f"{type(result).__name__}: {result}"
            else:
                published.append(claimed.id)
        return published, failures

    async def settle(
        self, claimed: int, published: Sequence[UUID], failures: Mapping[UUID, str]
    ) -> BatchResult:
        """Mark the published rows, schedule a retry (or dead) for the failed ones, in one
        transaction, only where this relay still holds the claim."""
        config = self.config
        now = self._now()
        marked: list[float] = []
        statuses: list[str] = []
        async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            if published:
                result = await uow.session.execute(
                    self._sql.published, {"ids": list(published), "me": self.worker_id, **now}
                )
                marked = [float(lag) for lag in result.scalars()]
            if failures:
                result = await uow.session.execute(
                    self._sql.failed,
                    {
                        "ids": list(failures),
                        "errors": [
                            truncate_utf8(error, config.last_error_bytes)
                            for error in failures.values()
                        ],
                        "me": self.worker_id,
                        "max_attempts": config.max_attempts,
                        "base": config.backoff_base_s,
                        "cap": config.backoff_max_s,
                        **now,
                    },
                )
                statuses = list(result.scalars())
            await uow.commit()
        for lag in marked:
            self._lags.record(lag)
        dead = statuses.count(OutboxStatus.DEAD)
        outcome = BatchResult(
            claimed=claimed,
            published=len(marked),
            retried=len(statuses) - dead,
            dead=dead,
            lost=len(published) - len(marked) + len(failures) - len(statuses),
        )
        for name in ("published", "retried", "dead", "lost"):
            self._counts[name] += getattr(outcome, name)
        if outcome.lost:
            logger.warning("relay %s lost %d rows to another relay", self.worker_id, outcome.lost)
        return outcome

    async def _release(self, batch: Sequence[ClaimedRow], error: BaseException) -> BatchResult:
        async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            await uow.session.execute(
                self._sql.release, {"ids": [row.id for row in batch], "me": self.worker_id}
            )
            await uow.commit()
        self._counts["broker_errors"] += 1
        self._counts["released"] += len(batch)
        logger.warning("relay %s: Redis unreachable, released %d rows", self.worker_id, len(batch))
        return BatchResult(
            claimed=len(batch), released=len(batch), broker_error=f"{type(error).__name__}: {error}"
        )

    def _now(self) -> dict[str, datetime]:
        return {} if self._clock is None else {"now": self._clock()}

    def _crash(self) -> NoReturn:
        sys.stderr.write(f"relay crashing after {self._counts['xadds']} XADDs (RUSTOK_CRASH_AT)\n")
        sys.stderr.flush()
        self._crash_exit(CRASH_EXIT_CODE)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until `stop` is set; the batch in hand is always finished first. Outages
        (Redis or PostgreSQL unreachable) are logged and waited out with a capped backoff."""
        config = self.config
        outages = 0
        while not stop.is_set():
            try:
                result = await self.run_once()
            except (SQLAlchemyError, RedisError, OSError) as exc:
                logger.warning("relay %s: cycle failed: %r", self.worker_id, exc)
                result = BatchResult(claimed=0, broker_error=repr(exc))
            if result.broker_error is not None:
                outages += 1
                delay = min(
                    config.outage_backoff_max_s, config.outage_backoff_base_s * 2 ** (outages - 1)
                )
                await _wait(stop, delay)
                continue
            outages = 0
            if result.claimed == 0:
                await _wait(stop, config.idle_s)

    # -- observation -------------------------------------------------------------------------

    def metrics(self) -> RelayMetrics:
        elapsed = 0.0 if self._started is None else self._monotonic() - self._started
        return RelayMetrics(
            worker_id=self.worker_id, elapsed_s=elapsed, lag=self._lags.summary(), **self._counts
        )


async def backlog(sessions: async_sessionmaker[AsyncSession]) -> Backlog:
    """The outbox's backlog as the database sees it now (the partial index serves it)."""
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        row = (
            await uow.session.execute(
                text(
                    "SELECT count(*) FILTER (WHERE status = 'pending'), "
                    "count(*) FILTER (WHERE status = 'dead'), "
                    "EXTRACT(EPOCH FROM now() - min(occurred_at) FILTER "
                    "(WHERE status = 'pending')) FROM outbox WHERE status <> 'published'"
                )
            )
        ).one()
    pending, dead, oldest = row
    return Backlog(int(pending), int(dead), None if oldest is None else float(oldest))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
