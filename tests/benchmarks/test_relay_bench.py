"""What the relay costs: a cycle of `OutboxRelay` (claim the aggregate heads, pipelined XADD,
mark published, each in a worker-role unit of work) against the same claim + pipelined XADD +
mark done with raw psycopg and redis-py (issue 4 aims at >= 0.5x its throughput); raw
pipelined XADD alone is the ceiling. Then the sustainable event rate of the whole path
(outbox -> relay -> stream -> consumer) from a ramp, with the p99 end-to-end lag at 50% and
80% of it, written to `reports/bench/relay-ramp-<time>.json`.

Both sides of a pair drain one pool of pending rows, one distinct aggregate each, seeded
before the rounds (the pool shrinks as the rounds go; the pair alternates who goes first).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.config import Settings, libpq_url
from rustok_ref.events import outbox
from rustok_ref.events.envelope import ProductUpdated, new_envelope
from rustok_ref.events.relay import OutboxRelay, RelayConfig
from rustok_ref.lab.benchrecord import Target
from rustok_ref.lab.ramp import ramp
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.storage import UnitOfWork

pytestmark = pytest.mark.integration

BATCH = 100
ROUNDS, ITERATIONS = 10, 2
REPORTS = Path(__file__).resolve().parents[2] / "reports" / "bench"

RAW_CLAIM = """
WITH heads AS (
    SELECT DISTINCT ON (aggregatetype, aggregateid) id FROM outbox
    WHERE status <> 'published' ORDER BY aggregatetype, aggregateid, seq
), due AS (
    SELECT o.id FROM outbox AS o JOIN heads USING (id)
    WHERE o.status = 'pending' AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
      AND (o.claimed_at IS NULL OR o.claimed_at <= now() - make_interval(secs => 30))
    ORDER BY o.seq LIMIT %(batch)s FOR UPDATE OF o SKIP LOCKED
)
UPDATE outbox AS o SET claimed_by = %(me)s, claimed_at = now() FROM due WHERE o.id = due.id
RETURNING o.id, o.aggregatetype, o.aggregateid, o.aggregate_version, o.type,
    o.schema_version, o.tenant_id, o.occurred_at, o.correlation_id, o.causation_id,
    o.actor_id, o.traceparent, o.payload
"""
RAW_MARK = """
UPDATE outbox SET status = 'published', published_at = now(), claimed_by = NULL,
    claimed_at = NULL, next_attempt_at = NULL, last_error = NULL
WHERE id = ANY(%(ids)s) AND claimed_by = %(me)s
"""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@pytest.fixture
def disabled(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable", default=False))


@pytest.fixture
def prefix(app_settings: Settings) -> str:
    return f"{app_settings.redis_prefix}bench-{uuid.uuid4().hex[:6]}:"


async def _fill(sessions: async_sessionmaker[AsyncSession], rows: int) -> None:
    """`rows` pending events, each of its own aggregate, in chunks of 500 per transaction."""
    tenant = uuid.uuid4()
    for start in range(0, rows, 500):
        events = [
            new_envelope(ProductUpdated(product_id=uuid.uuid4()), tenant_id=tenant)
            for _ in range(min(500, rows - start))
        ]
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            await outbox.append(uow, *events)
            await uow.commit()


@pytest.fixture
async def raw(
    app_settings: Settings, redis_client: aioredis.Redis, prefix: str
) -> AsyncIterator[Any]:
    """The baseline: one autocommit psycopg connection as the worker role, redis-py."""
    assert app_settings.database_url is not None
    conn = await psycopg.AsyncConnection.connect(
        libpq_url(app_settings.database_url), autocommit=True, row_factory=dict_row
    )
    await conn.execute("SET ROLE rustok_worker")
    me = f"raw-{uuid.uuid4()}"
    stream = f"{prefix}events:product"

    async def cycle() -> None:
        cursor = await conn.execute(RAW_CLAIM, {"batch": BATCH, "me": me})
        rows = await cursor.fetchall()
        pipe = redis_client.pipeline(transaction=False)
        for row in rows:
            header = {
                "id": str(row["id"]),
                "event_type": row["type"],
                "schema_version": row["schema_version"],
                "tenant_id": str(row["tenant_id"]),
                "aggregate_type": row["aggregatetype"],
                "aggregate_id": str(row["aggregateid"]),
                "aggregate_version": row["aggregate_version"],
                "correlation_id": row["correlation_id"],
                "causation_id": _text(row["causation_id"]),
                "actor_id": _text(row["actor_id"]),
                "traceparent": row["traceparent"],
                "occurred_at": row["occurred_at"].isoformat(),
                "payload": row["payload"],
            }
            fields = {
                "id": header["id"],
                "type": row["type"],
                "aggregateid": header["aggregate_id"],
                "version": _text(row["aggregate_version"]) or "",
                "tenant": header["tenant_id"],
                "envelope": json.dumps(header).encode(),
            }
            pipe.xadd(stream, fields, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
        await conn.execute(RAW_MARK, {"ids": [row["id"] for row in rows], "me": me})

    yield cycle
    await conn.close()


def _pool_size(disabled: bool, sides: int) -> int:
    return 2 * BATCH * sides if disabled else BATCH * ROUNDS * ITERATIONS * sides + BATCH


async def test_relay_throughput_against_raw_psycopg_and_redis_py(
    paired,
    disabled: bool,
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
    raw: Any,
) -> None:
    await _fill(sessions, _pool_size(disabled, sides=2))
    relay = OutboxRelay(sessions, redis_client, prefix=prefix, config=RelayConfig(batch_size=BATCH))

    async def relay_cycle() -> None:
        assert (await relay.run_once()).published == BATCH

    await paired.async_(
        relay_cycle,
        raw,
        labels=(f"OutboxRelay.run_once, {BATCH} rows", f"raw claim + XADD + mark, {BATCH} rows"),
        target=Target(measure="throughput", op=">=", value=0.5),
        rounds=ROUNDS,
        iterations=ITERATIONS,
    )


async def test_relay_throughput_against_the_pipelined_xadd_ceiling(
    paired,
    disabled: bool,
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    await _fill(sessions, _pool_size(disabled, sides=1))
    relay = OutboxRelay(sessions, redis_client, prefix=prefix, config=RelayConfig(batch_size=BATCH))
    tenant = uuid.uuid4()
    entries = [
        {"id": str(e.id), "type": e.event_type, "envelope": e.to_json()}
        for e in (
            new_envelope(ProductUpdated(product_id=uuid.uuid4()), tenant_id=tenant)
            for _ in range(BATCH)
        )
    ]

    async def relay_cycle() -> None:
        assert (await relay.run_once()).published == BATCH

    async def xadd_only() -> None:
        pipe = redis_client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(f"{prefix}ceiling", fields, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()

    await paired.async_(
        relay_cycle,
        xadd_only,
        labels=(f"OutboxRelay.run_once, {BATCH} rows", f"pipelined XADD only, {BATCH} entries"),
        target=None,
        rounds=ROUNDS,
        iterations=ITERATIONS,
    )


async def test_a_relay_cycle_costs_the_same_round_trips_whatever_the_batch(
    app_settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
) -> None:
    assert app_settings.redis_url is not None
    client = aioredis.Redis.from_url(app_settings.redis_url)
    trips = RoundTrips()
    trips.watch_engine(engine)
    trips.watch_redis(client)
    try:
        counted = []
        for batch in (10, BATCH):
            await _fill(sessions, batch)
            relay = OutboxRelay(
                sessions, client, prefix=prefix, config=RelayConfig(batch_size=batch)
            )
            trips.reset()
            assert (await relay.run_once()).published == batch
            counted.append((trips.database, trips.redis))
    finally:
        trips.close()
        await client.aclose()
    assert counted[0] == counted[1]  # two units of work and one pipeline, at any batch size
    assert counted[1][1] == 1


async def test_the_sustainable_event_rate_and_its_lag(
    disabled: bool,
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    if disabled:  # keep the ramp from rotting: one tiny step
        result = await ramp(
            sessions, redis_client, prefix=prefix, rates=[50], step_s=0.3, drain_s=2
        )
        assert result.steps and result.steps[0].lag.events > 0
        return
    result = await ramp(
        sessions,
        redis_client,
        prefix=prefix,
        rates=[250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2500, 3000],
        step_s=3.0,
        drain_s=2.0,
        lag_bound_s=1.0,
    )
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"relay-ramp-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result.to_dict(), indent=2))
    print(f"\nrelay ramp: {path}\n{json.dumps(result.to_dict(), indent=2)}")
    assert result.sustainable_rate is not None
