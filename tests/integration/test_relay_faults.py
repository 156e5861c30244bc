"""The relay under faults, on the real services: Redis down (through the fault proxy), two
relays with injected publish failures, a real relay process killed after k XADDs by the crash
hook and restarted, and SIGTERM. What must hold: nothing committed is lost, nothing is
reordered within an aggregate, duplicates are only ever delivered and absorbed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from fixtures.outbox_pipeline import (
    drain,
    own_prefix,
    rows,
    seed,
    statuses,
    through,
    wait_until,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.events.consumer import ConsumerConfig, StreamConsumer
from rustok_ref.events.envelope import EventEnvelope
from rustok_ref.events.relay import OutboxRelay, RelayConfig, stream_name
from rustok_ref.lab.faults import FaultProxy
from rustok_ref.lab.ramp import DeliveryAudit, Sighting, stream_sightings
from rustok_ref.saga import CRASH_EXIT_CODE
from rustok_ref.storage import UnitOfWork

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROCESS_LIVENESS_S = 90  # a relay process starts and drains these outboxes in a few seconds
QUICK = RelayConfig(
    batch_size=8,
    idle_s=0.005,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    outage_backoff_base_s=0.01,
    outage_backoff_max_s=0.05,
    max_attempts=10_000,
)


@pytest.fixture
def prefix(app_settings: Settings) -> str:
    return own_prefix(app_settings.redis_prefix)


@pytest.fixture
def redis_proxy(app_settings: Settings) -> Iterator[FaultProxy]:
    assert app_settings.redis_url is not None
    upstream = urlsplit(app_settings.redis_url)
    assert upstream.hostname is not None and upstream.port is not None
    with FaultProxy("redis", (upstream.hostname, upstream.port)) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def proxied_redis(app_settings: Settings, proxy: FaultProxy) -> AsyncIterator[aioredis.Redis]:
    assert app_settings.redis_url is not None
    client = aioredis.Redis.from_url(
        through(app_settings.redis_url, proxy), retry=Retry(NoBackoff(), 0), socket_timeout=10
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def quiet_outbox(
    sessions: async_sessionmaker[AsyncSession], redis_client: aioredis.Redis, prefix: str
) -> None:
    """Publish what other tests left due (to a scratch prefix), so a test's relay counts
    only its own rows."""
    await drain(OutboxRelay(sessions, redis_client, prefix=f"{prefix}scratch:"))


def mine(sightings: Sequence[Sighting], events: Sequence[EventEnvelope]) -> list[Sighting]:
    ids = {str(event.id) for event in events}
    return [sighting for sighting in sightings if sighting.event_id in ids]


async def all_published(
    sessions: async_sessionmaker[AsyncSession], events: Sequence[EventEnvelope]
) -> bool:
    return set(await statuses(sessions, events)) == {"published"}


@contextlib.asynccontextmanager
async def relays_running(*relays: OutboxRelay) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)) for relay in relays]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_with_redis_down_the_outbox_accepts_and_the_relay_catches_up_losing_nothing(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    redis_proxy: FaultProxy,
    app_settings: Settings,
    prefix: str,
) -> None:
    redis_proxy.disable()
    async with proxied_redis(app_settings, redis_proxy) as client:
        relay = OutboxRelay(sessions, client, prefix=prefix, config=QUICK)
        async with relays_running(relay):
            events = await seed(sessions, tenants=3, events_each=5)  # the outbox accepts
            await wait_until(lambda: relay.metrics().broker_errors >= 3, what="tries while down")
            found = await rows(sessions, events)
            assert {(r["status"], r["attempts"]) for r in found.values()} == {("pending", 0)}
            redis_proxy.enable()
            await wait_until(lambda: all_published(sessions, events), what="caught up")
    assert redis_proxy.stats().refused >= 3
    assert relay.metrics().dead == 0
    sightings = mine(await stream_sightings(redis_client, [stream_name(prefix, "tenant")]), events)
    audit = DeliveryAudit.of(sightings)
    assert (audit.events, audit.reorderings, audit.duplicates) == (len(events), 0, 0)


async def test_two_relays_with_publish_failures_never_reorder_an_aggregate(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    redis_proxy: FaultProxy,
    app_settings: Settings,
    prefix: str,
) -> None:
    events = await seed(sessions, tenants=12, events_each=6)
    stream = stream_name(prefix, "tenant")
    await redis_client.set(stream, "not a stream")  # every XADD to it fails: WRONGTYPE

    async def flap(stop: asyncio.Event) -> None:
        """Take Redis away for 20 ms in every 60 ms: pipelines cut mid-way, refused
        connections."""
        while not stop.is_set():
            await asyncio.sleep(0.04)
            redis_proxy.disable()
            await asyncio.sleep(0.02)
            redis_proxy.enable()

    async with (
        proxied_redis(app_settings, redis_proxy) as first_client,
        proxied_redis(app_settings, redis_proxy) as second_client,
    ):
        first = OutboxRelay(sessions, first_client, prefix=prefix, config=QUICK)
        second = OutboxRelay(sessions, second_client, prefix=prefix, config=QUICK)
        flapping = asyncio.Event()
        flapper = asyncio.create_task(flap(flapping))
        try:
            async with relays_running(first, second):
                await wait_until(
                    lambda: first.metrics().retried + second.metrics().retried >= 6,
                    what="rows refused by the stream",
                )
                await redis_client.delete(stream)
                await wait_until(
                    lambda: first.metrics().broker_errors + second.metrics().broker_errors >= 2,
                    what="publishes cut by the proxy",
                )
                flapping.set()
                await flapper
                await wait_until(lambda: all_published(sessions, events), what="all published")
        finally:
            flapping.set()
            await flapper
            redis_proxy.enable()
    audit = DeliveryAudit.of(mine(await stream_sightings(redis_client, [stream]), events))
    assert (audit.events, audit.reorderings) == (len(events), 0)
    assert first.metrics().dead + second.metrics().dead == 0


async def test_two_healthy_relays_publish_each_row_once_in_aggregate_order(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    prefix: str,
) -> None:
    first = OutboxRelay(sessions, redis_client, prefix=prefix, config=QUICK)
    second = OutboxRelay(sessions, redis_client, prefix=prefix, config=QUICK)
    async with relays_running(first, second):
        events = await seed(sessions, tenants=20, events_each=5)  # written while they run
        await wait_until(lambda: all_published(sessions, events), what="all published")
    stream = stream_name(prefix, "tenant")
    audit = DeliveryAudit.of(mine(await stream_sightings(redis_client, [stream]), events))
    assert (audit.events, audit.duplicates, audit.reorderings) == (len(events), 0, 0)
    assert first.metrics().lost + second.metrics().lost == 0
    assert first.metrics().published > 0 and second.metrics().published > 0


def _relay_process(
    settings: Settings, prefix: str, *args: str, crash_at: str | None = None
) -> subprocess.Popen[str]:
    assert settings.database_url is not None and settings.redis_url is not None
    env = {
        **os.environ,
        "RUSTOK_DATABASE_URL": settings.database_url,
        "RUSTOK_REDIS_URL": settings.redis_url,
        "RUSTOK_REDIS_PREFIX": prefix,
        "RUSTOK_BACKEND": "external",
    }
    if crash_at is not None:
        env |= {"RUSTOK_TEST_HOOKS": "1", "RUSTOK_CRASH_AT": crash_at}
    return subprocess.Popen(
        [sys.executable, "-c", "from rustok_ref.cli import main; main()", "relay", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=PROCESS_LIVENESS_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("quiet_outbox")
async def test_a_relay_killed_after_k_xadds_loses_nothing_and_its_duplicates_are_absorbed(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    app_settings: Settings,
    prefix: str,
) -> None:
    events = await seed(sessions, tenants=4, events_each=5)
    stream = stream_name(prefix, "tenant")
    k = 6  # the whole first batch of 4 is marked; 2 XADDs of the second, then death

    code, _, err = await asyncio.to_thread(
        _finish,
        _relay_process(app_settings, prefix, "--once", "--batch", "4", crash_at=f"relay:{k}"),
    )
    assert code == CRASH_EXIT_CODE, err
    assert await redis_client.xlen(stream) == k
    claimed = [r for r in (await rows(sessions, events)).values() if r["claimed_by"] is not None]
    assert claimed  # the dead relay's batch is still claimed: its lease has to run out

    handled: list[Sighting] = []

    async def observe_only(_uow: UnitOfWork, _event: EventEnvelope) -> None:
        return None

    def consumer() -> StreamConsumer:  # the same name: a restart, not a second consumer
        return StreamConsumer(
            redis_client,
            sessions,
            group="crash-test",
            handler=observe_only,
            aggregate_types=["tenant"],
            prefix=prefix,
            name="c1",
            config=ConsumerConfig(lanes=2, block_ms=20),
            on_handled=lambda e, _: handled.append(
                Sighting(str(e.id), str(e.aggregate_id), e.aggregate_version)
            ),
        )

    before = consumer()
    stop = asyncio.Event()
    task = asyncio.create_task(before.run(stop))
    await wait_until(lambda: before.metrics().acked == k, what="the first k consumed")
    stop.set()
    await task

    code, out, err = await asyncio.to_thread(
        _finish, _relay_process(app_settings, prefix, "--once", "--batch", "4", "--lease", "0s")
    )
    assert code == 0, err
    assert "published" in out
    assert await all_published(sessions, events)

    after = consumer()
    stop = asyncio.Event()
    task = asyncio.create_task(after.run(stop))
    entries = await redis_client.xlen(stream)
    await wait_until(lambda: before.metrics().acked + after.metrics().acked == entries, what="all")
    stop.set()
    await task

    streamed = DeliveryAudit.of(mine(await stream_sightings(redis_client, [stream]), events))
    assert streamed.events == len(events) and streamed.reorderings == 0
    assert streamed.duplicates >= 1  # the killed batch's XADDs went out again
    absorbed = before.metrics().duplicates + after.metrics().duplicates
    assert absorbed == streamed.duplicates
    delivered = DeliveryAudit.of(handled)
    assert (delivered.events, delivered.duplicates, delivered.reorderings) == (len(events), 0, 0)


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("quiet_outbox")
async def test_sigterm_lets_the_relay_finish_its_batch_and_exit_cleanly(
    sessions: async_sessionmaker[AsyncSession], app_settings: Settings, prefix: str
) -> None:
    events = await seed(sessions, tenants=30, events_each=3)
    process = _relay_process(app_settings, prefix, "--batch", "5")
    try:

        async def some_published() -> bool:
            return "published" in await statuses(sessions, events)

        await wait_until(some_published, what="the relay at work", timeout_s=PROCESS_LIVENESS_S)
        process.send_signal(signal.SIGTERM)
        code, out, err = await asyncio.to_thread(_finish, process)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, err
    assert "published" in out
    found = await rows(sessions, events)
    assert all(row["claimed_by"] is None for row in found.values())  # no batch left half-done
