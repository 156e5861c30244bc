"""Sprint 1's "EventBus consistency audit: 100% pass", re-run on rustok_ref.

For every catalogued event type, three checks: a valid payload (built from the type's
schema, `event_validation.valid_payload`) makes an envelope that validates; the envelope is
committed to the outbox; the relay publishes it and a subscriber of its aggregate's stream
receives it. The relay and a consumer group of the audit's own run until every event has
arrived or the liveness bound passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.errors import ValidationError
from rustok_ref.events import outbox
from rustok_ref.events.consumer import ConsumerConfig, StreamConsumer
from rustok_ref.events.envelope import CATALOGUE, EventEnvelope, new_envelope
from rustok_ref.events.relay import OutboxRelay, RelayConfig
from rustok_ref.lab.experiments.event_validation import valid_payload
from rustok_ref.storage import UnitOfWork

CHECKS = ("validates", "committed to the outbox", "reaches its subscriber")


@dataclass
class TypeAudit:
    event_type: str
    validates: bool = False
    committed: bool = False
    received: bool = False

    @property
    def passed(self) -> int:
        return self.validates + self.committed + self.received


async def run_audit(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    prefix: str,
    *,
    bound_s: float,
) -> list[TypeAudit]:
    """The three checks for every catalogued type, for a fresh tenant id."""
    tenant = uuid.uuid4()
    audits, sent = [], {}
    for spec in CATALOGUE:
        audit = TypeAudit(spec.event_type)
        audits.append(audit)
        try:
            payload = spec.model.model_validate(valid_payload(spec.model.model_json_schema()))
            event = new_envelope(payload, tenant_id=tenant, aggregate_version=1)
        except ValidationError:
            continue
        audit.validates = True
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            await outbox.append(uow, event)
            await uow.commit()
        audit.committed = True
        sent[event.id] = audit
    await _deliver(sessions, redis, prefix, sent, bound_s)
    return audits


async def _deliver(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    prefix: str,
    sent: dict[uuid.UUID, TypeAudit],
    bound_s: float,
) -> None:
    if not sent:
        return
    arrived = asyncio.Event()

    async def handle(_uow: UnitOfWork, event: EventEnvelope) -> None:
        if event.id in sent:
            sent[event.id].received = True
        if all(audit.received for audit in sent.values()):
            arrived.set()

    consumer = StreamConsumer(
        redis,
        sessions,
        group=f"audit-{uuid.uuid4().hex[:8]}",
        handler=handle,
        aggregate_types={spec.aggregate_type for spec in CATALOGUE},
        prefix=prefix,
        config=ConsumerConfig(block_ms=20),
    )
    relay = OutboxRelay(sessions, redis, prefix=prefix, config=RelayConfig(idle_s=0.01))
    await consumer.setup()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(consumer.run(stop))]
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), bound_s)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def passing_share(audits: list[TypeAudit]) -> float:
    """Percent of the audit's checks (three per type) that passed."""
    if not audits:
        raise ValueError("no event types audited")
    return 100 * sum(a.passed for a in audits) / (len(CHECKS) * len(audits))
