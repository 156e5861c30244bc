"""The outbox write path against the real PostgreSQL: the event shares the change's
transaction, bad events never reach the table, prune keeps what it must, tenants are apart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from rustok_ref.cli import app
from rustok_ref.config import Settings
from rustok_ref.errors import ValidationError
from rustok_ref.events import outbox
from rustok_ref.events.envelope import (
    EventEnvelope,
    LocaleEnabled,
    OrderCancelled,
    OrderPlaced,
    TenantCreated,
    new_envelope,
)
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.storage import DbRole, UnitOfWork, tenants
from rustok_ref.storage.tables import outbox as outbox_table

pytestmark = pytest.mark.integration

LONG_AGO = datetime(2000, 1, 20, tzinfo=UTC)  # far from any row another test publishes


def _order_event(tenant: uuid.UUID) -> EventEnvelope:
    return new_envelope(
        OrderPlaced(order_id=uuid.uuid4(), total=100, currency="USD"), tenant_id=tenant
    )


async def _stored_ids(
    sessions: async_sessionmaker[AsyncSession], tenant: uuid.UUID
) -> set[uuid.UUID]:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        rows = await uow.session.execute(
            select(outbox_table.c.id).where(outbox_table.c.tenant_id == tenant)
        )
        return set(rows.scalars())


async def test_an_appended_event_reads_back_as_the_same_envelope(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = uuid.uuid4()
    event = new_envelope(
        OrderCancelled(order_id=uuid.uuid4(), reason="changed my mind — ünïcode"),
        tenant_id=tenant,
        actor_id=uuid.uuid4(),
        aggregate_version=4,
    )
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        await outbox.append(uow, event)
        await uow.commit()
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        row = (await uow.session.execute(select(outbox_table))).mappings().one()
    assert outbox.envelope_from_row(row) == event
    assert (row["aggregatetype"], row["aggregateid"], row["type"]) == (
        "order",
        event.aggregate_id,
        "order.cancelled",
    )
    assert (row["status"], row["attempts"], row["claimed_by"]) == (
        outbox.OutboxStatus.PENDING,
        0,
        None,
    )


async def test_appending_several_events_is_one_round_trip(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = uuid.uuid4()
    events = [_order_event(tenant) for _ in range(5)]
    trips = RoundTrips()
    trips.watch_engine(engine)
    try:
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            trips.reset()
            await outbox.append(uow, *events)
            assert trips.database == 1
            await uow.commit()
    finally:
        trips.close()
    assert await _stored_ids(sessions, tenant) == {event.id for event in events}


# each transaction: how many events, and how it ends
endings = st.sampled_from(["commit", "rollback", "raise", "leave"])
transactions = st.lists(st.tuples(st.integers(0, 3), endings), min_size=1, max_size=6)


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(transactions)
async def test_only_committed_transactions_leave_events_and_all_of_theirs(
    sessions: async_sessionmaker[AsyncSession], plan: list[tuple[int, str]]
) -> None:
    tenant = uuid.uuid4()
    committed: set[uuid.UUID] = set()
    for count, ending in plan:
        events = [_order_event(tenant) for _ in range(count)]
        try:
            async with UnitOfWork(sessions, tenant_id=tenant) as uow:
                await outbox.append(uow, *events)
                if ending == "commit":
                    await uow.commit()
                    committed |= {event.id for event in events}
                elif ending == "rollback":
                    await uow.rollback()
                elif ending == "raise":
                    raise RuntimeError("the change failed")
        except RuntimeError:
            pass
    assert await _stored_ids(sessions, tenant) == committed


async def test_the_event_and_the_change_commit_or_vanish_together(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    for commit in (False, True):
        tenant = uuid.uuid4()
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            slug = f"t-{tenant.hex[:12]}"
            await uow.session.execute(insert(tenants).values(id=tenant, slug=slug, name=slug))
            await outbox.append(
                uow, new_envelope(TenantCreated(tenant_id=tenant), tenant_id=tenant)
            )
            if commit:
                await uow.commit()
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            changed = await uow.session.scalar(select(func.count()).select_from(tenants))
        assert changed == int(commit)
        assert len(await _stored_ids(sessions, tenant)) == int(commit)


async def test_malformed_or_oversized_events_are_refused_before_they_are_stored(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = uuid.uuid4()
    trips = RoundTrips()
    trips.watch_engine(engine)
    try:
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            trips.reset()
            with pytest.raises(ValidationError, match="locale"):
                await outbox.append(
                    uow,
                    new_envelope(LocaleEnabled(tenant_id=tenant, locale=" "), tenant_id=tenant),
                )
            with pytest.raises(ValidationError, match="reason"):
                await outbox.append(
                    uow,
                    new_envelope(
                        OrderCancelled(order_id=uuid.uuid4(), reason="x" * 501), tenant_id=tenant
                    ),
                )
            assert trips.database == 0, "a refused event must not reach the database"
            await uow.commit()
    finally:
        trips.close()
    assert await _stored_ids(sessions, tenant) == set()


async def test_a_request_sees_and_writes_only_its_own_tenants_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    for tenant in (a, b):
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            await outbox.append(uow, _order_event(tenant))
            await uow.commit()
    async with UnitOfWork(sessions, tenant_id=a) as uow:
        seen = set((await uow.session.execute(select(outbox_table.c.tenant_id))).scalars())
    assert seen == {a}
    async with UnitOfWork(sessions, tenant_id=a) as uow:
        with pytest.raises(DBAPIError, match="row-level security"):
            await outbox.append(uow, _order_event(b))
    assert len(await _stored_ids(sessions, b)) == 1


async def _publish(
    sessions: async_sessionmaker[AsyncSession],
    tenant: uuid.UUID,
    published_at: datetime | None,
    status: outbox.OutboxStatus,
) -> uuid.UUID:
    event = _order_event(tenant)
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        await outbox.append(uow, event)
        await uow.session.execute(
            update(outbox_table)
            .where(outbox_table.c.id == event.id)
            .values(status=status, published_at=published_at)
        )
        await uow.commit()
    return event.id


async def test_prune_deletes_only_published_rows_older_than_the_age(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = uuid.uuid4()
    published, pending, dead = (
        outbox.OutboxStatus.PUBLISHED,
        outbox.OutboxStatus.PENDING,
        outbox.OutboxStatus.DEAD,
    )
    old = [await _publish(sessions, tenant, LONG_AGO - timedelta(days=8), published) for _ in "abc"]
    recent = await _publish(sessions, tenant, LONG_AGO - timedelta(days=6), published)
    waiting = await _publish(sessions, tenant, None, pending)
    stuck = await _publish(sessions, tenant, LONG_AGO - timedelta(days=30), dead)

    removed = await outbox.prune(sessions, timedelta(days=7), now=LONG_AGO, batch_size=2)

    assert removed == len(old)
    assert await _stored_ids(sessions, tenant) == {recent, waiting, stuck}


async def test_the_prune_command_prunes_the_configured_database(
    app_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = uuid.uuid4()
    old = await _publish(sessions, tenant, LONG_AGO, outbox.OutboxStatus.PUBLISHED)
    waiting = await _publish(sessions, tenant, None, outbox.OutboxStatus.PENDING)
    assert app_settings.database_url is not None
    env = {"RUSTOK_DATABASE_URL": app_settings.database_url}
    runner = CliRunner()

    done = await asyncio.to_thread(
        runner.invoke, app, ["outbox", "prune", "--older-than", "7d"], env=env
    )

    assert done.exit_code == 0, done.output
    assert "pruned" in done.output
    assert await _stored_ids(sessions, tenant) == {waiting}
    assert old not in await _stored_ids(sessions, tenant)


def test_the_prune_command_refuses_a_bad_duration_or_a_missing_database() -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["outbox", "prune", "--older-than", "a week"])
    assert bad.exit_code == 1
    assert "not a duration" in bad.output
    unset = runner.invoke(app, ["outbox", "prune"], env={"RUSTOK_DATABASE_URL": None})
    assert unset.exit_code == 1
    assert "RUSTOK_DATABASE_URL is not set" in unset.output
