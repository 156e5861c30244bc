"""Projections (CQRS-lite): read tables kept by stream consumers, rebuildable from the events.

A `Projection` is a name (its consumer group and its `processed_events` consumer), a read
table, and one handler per event type it follows. Each handler writes the table inside the
consumer's transaction (`consumer.py`: handled once per event, in order per aggregate).
`projection.consumer(...)` is its live consumer; `projection.rebuild(...)` throws the table
away and replays, in one transaction, every published outbox row of its event types, oldest
first per aggregate (`seq`). The rebuild locks the table (EXCLUSIVE: readers go on, writers
wait) before it writes, and records each replayed event as processed, so a live consumer
that receives one of them later rolls it back as a duplicate: incremental processing and a
rebuild end in the same rows. The outbox keeps published rows until `outbox prune`; events
pruned before a rebuild are out of its reach (a projection that must outlive the outbox
replays the event store instead).

RusToK's counterpart is rustok-index (reference §8): handlers filling denormalised tables,
with no rebuild. The tenant view below proves the framework; the commerce work adds the
product and order views on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from sqlalchemy import Table, any_, bindparam, case, delete, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.events.consumer import ConsumerConfig, HandledObserver, StreamConsumer
from rustok_ref.events.envelope import (
    CATALOGUE,
    Catalogue,
    EventEnvelope,
    LocaleDisabled,
    LocaleEnabled,
)
from rustok_ref.events.outbox import OutboxStatus, envelope_from_row
from rustok_ref.storage.roles import DbRole
from rustok_ref.storage.tables import outbox, processed_events, tenant_view
from rustok_ref.storage.unit_of_work import UnitOfWork

ProjectionHandler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]


@dataclass(frozen=True)
class Projection:
    """A read table and the handlers that keep it, by event type."""

    name: str
    table: Table
    handlers: Mapping[str, ProjectionHandler]
    catalogue: Catalogue = field(default=CATALOGUE, repr=False)

    def __post_init__(self) -> None:
        if not self.handlers:
            raise ValueError(f"projection {self.name!r} handles no event type")
        for event_type in self.handlers:
            self.catalogue.spec(event_type)  # an unknown type fails here, not at runtime

    @property
    def aggregate_types(self) -> tuple[str, ...]:
        """The streams the projection reads: its event types' aggregates."""
        return tuple(sorted({self.catalogue.spec(t).aggregate_type for t in self.handlers}))

    async def apply(self, uow: UnitOfWork, envelope: EventEnvelope) -> None:
        """The consumer's handler: apply one event (other types on the stream are skipped)."""
        handler = self.handlers.get(envelope.event_type)
        if handler is not None:
            await handler(uow.session, envelope)

    def consumer(
        self,
        redis: aioredis.Redis,
        sessions: async_sessionmaker[AsyncSession],
        *,
        prefix: str,
        name: str | None = None,
        config: ConsumerConfig | None = None,
        on_handled: HandledObserver | None = None,
    ) -> StreamConsumer:
        """The projection's live consumer (group = the projection's name)."""
        return StreamConsumer(
            redis,
            sessions,
            group=self.name,
            handler=self.apply,
            aggregate_types=self.aggregate_types,
            prefix=prefix,
            name=name,
            config=config,
            catalogue=self.catalogue,
            on_handled=on_handled,
        )

    async def rebuild(
        self, sessions: async_sessionmaker[AsyncSession], *, batch_size: int = 1_000
    ) -> int:
        """Empty the table and replay the published outbox rows of the projection's types,
        in one transaction; returns how many events were replayed."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        replayed = 0
        after = 0
        page = (
            select(outbox)
            .where(
                outbox.c.status == OutboxStatus.PUBLISHED,
                outbox.c.type.in_(list(self.handlers)),
                outbox.c.seq > bindparam("after"),
            )
            .order_by(outbox.c.seq)
            .limit(batch_size)
        )
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            session = uow.session
            await session.execute(text(f'LOCK TABLE "{self.table.name}" IN EXCLUSIVE MODE'))
            await session.execute(delete(self.table))
            while True:
                rows = (await session.execute(page, {"after": after})).mappings().all()
                if not rows:
                    break
                events = [
                    envelope_from_row(cast(Mapping[str, Any], row), self.catalogue) for row in rows
                ]
                for envelope in events:
                    await self.handlers[envelope.event_type](session, envelope)
                await session.execute(
                    pg_insert(processed_events).on_conflict_do_nothing(),
                    [{"event_id": envelope.id, "consumer": self.name} for envelope in events],
                )
                replayed += len(rows)
                after = rows[-1]["seq"]
            await uow.commit()
        return replayed


# The tenant view: one row per tenant, from the tenant events.
def _upsert_tenant(
    envelope: EventEnvelope, *, inserted: Mapping[str, Any], updated: Mapping[str, Any]
) -> Any:
    """One event's upsert of its tenant's row: the common bookkeeping plus `inserted` (a new
    row) or `updated` (an existing one)."""
    stmt = pg_insert(tenant_view).values(
        tenant_id=envelope.aggregate_id,
        updated_at=envelope.occurred_at,
        events=1,
        last_event_id=envelope.id,
        version=envelope.aggregate_version,
        **inserted,
    )
    return stmt.on_conflict_do_update(
        index_elements=[tenant_view.c.tenant_id],
        set_={
            "updated_at": stmt.excluded.updated_at,
            "events": tenant_view.c.events + 1,
            "last_event_id": stmt.excluded.last_event_id,
            "version": stmt.excluded.version,
            **updated,
        },
    )


async def _tenant_created(session: AsyncSession, envelope: EventEnvelope) -> None:
    created = {"created_at": envelope.occurred_at}
    await session.execute(_upsert_tenant(envelope, inserted=created, updated=created))


async def _tenant_updated(session: AsyncSession, envelope: EventEnvelope) -> None:
    await session.execute(
        _upsert_tenant(
            envelope, inserted={"updates": 1}, updated={"updates": tenant_view.c.updates + 1}
        )
    )


async def _locale_enabled(session: AsyncSession, envelope: EventEnvelope) -> None:
    assert isinstance(envelope.payload, LocaleEnabled)
    locale = envelope.payload.locale
    locales = tenant_view.c.locales
    added = case(
        (literal(locale) == any_(locales), locales), else_=func.array_append(locales, locale)
    )
    await session.execute(
        _upsert_tenant(envelope, inserted={"locales": [locale]}, updated={"locales": added})
    )


async def _locale_disabled(session: AsyncSession, envelope: EventEnvelope) -> None:
    assert isinstance(envelope.payload, LocaleDisabled)
    removed = func.array_remove(tenant_view.c.locales, envelope.payload.locale)
    await session.execute(
        _upsert_tenant(envelope, inserted={"locales": []}, updated={"locales": removed})
    )


TENANT_VIEW = Projection(
    "tenant_view",
    tenant_view,
    {
        "tenant.created": _tenant_created,
        "tenant.updated": _tenant_updated,
        "locale.enabled": _locale_enabled,
        "locale.disabled": _locale_disabled,
    },
)
"""The tenant view: locales enabled now, when the tenant was created and last changed, how
many updates and events it saw, and its last event and aggregate version."""
