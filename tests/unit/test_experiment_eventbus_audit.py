"""The EventBus audit re-run on rustok_ref: its share, and (integration) every catalogued type
validated, committed to the outbox, relayed and received."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.events.envelope import CATALOGUE
from rustok_ref.lab.experiments import eventbus_audit as audit


def test_passing_share_counts_three_checks_per_type() -> None:
    done = audit.TypeAudit("a.b", validates=True, committed=True, received=True)
    half = audit.TypeAudit("c.d", validates=True, committed=False, received=False)
    assert audit.passing_share([done, half]) == pytest.approx(100 * 4 / 6)
    with pytest.raises(ValueError, match="no event types"):
        audit.passing_share([])


@pytest.mark.integration
async def test_every_catalogued_type_goes_through_to_a_subscriber(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    app_settings: Settings,
) -> None:
    prefix = f"{app_settings.redis_prefix}audit-test:"
    audits = await audit.run_audit(sessions, redis_client, prefix, bound_s=60.0)
    assert {a.event_type for a in audits} == {spec.event_type for spec in CATALOGUE}
    assert audit.passing_share(audits) == 100, [a for a in audits if a.passed < 3]
