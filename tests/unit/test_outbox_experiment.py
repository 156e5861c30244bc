"""The outbox experiment behind 05_outbox, on the real services: transactions failed at
random points leave no orphan event and no change without its event, and a relay process
killed after k XADDs and restarted loses nothing, reorders nothing, and the consumer absorbs
exactly the entries sent twice."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.lab.experiments import outbox

pytestmark = pytest.mark.integration


async def test_a_change_and_its_event_commit_or_roll_back_together(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    audit = await outbox.failed_transactions(sessions, transactions=40, seed=11)
    assert sum(audit.by_point.values()) == audit.committed + audit.rolled_back == 40
    assert audit.committed == audit.by_point["never"] > 0
    assert audit.rolled_back > 0
    assert (audit.orphan_events, audit.changes_without_event, audit.violations) == (0, 0, 0)


@pytest.mark.timeout(240)
async def test_a_relay_killed_mid_batch_loses_nothing_and_its_resent_entries_are_absorbed(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    app_settings: Settings,
) -> None:
    [run] = await outbox.relay_crashes(
        app_settings, sessions, redis_client, kills=1, seed=5, aggregates=3, events_each=4
    )
    assert 1 <= run.crash_after < run.committed == 12
    assert (run.delivered, run.lost, run.reorderings, run.handled_twice) == (12, 0, 0, 0)
    assert run.duplicates_absorbed >= 1  # the killed batch went out again
    assert run.stream_entries == run.committed + run.duplicates_absorbed
