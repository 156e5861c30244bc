"""The load run's leftovers (`events_lost`, `sagas_incomplete`) read from real PostgreSQL:
a dead event and a parked saga of any tenant count, a finished saga does not, and in-flight
work is waited for only up to the bound. Dead rows and parked sagas are used because no
relay or recovery elsewhere in the session touches them, so the counts move only by what
the test writes."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.events import outbox
from rustok_ref.events.envelope import new_envelope
from rustok_ref.features.store import FeatureFlagChanged
from rustok_ref.lab.load_ledger import Leftovers, leftovers_after, read_leftovers
from rustok_ref.saga.log import SagaLog, SagaState
from rustok_ref.storage import UnitOfWork
from rustok_ref.storage.tables import outbox as outbox_table
from rustok_ref.storage.tables import saga_instances

COMPENSATING_STATES = {SagaState.COMPENSATING, SagaState.COMPENSATED, SagaState.FAILED}


async def _update(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    table: Table,
    row_id: uuid.UUID,
    **values: object,
) -> None:
    async with UnitOfWork(sessions, tenant_id=tenant_id) as uow:
        await uow.session.execute(update(table).where(table.c.id == row_id).values(**values))
        await uow.commit()


async def _set_event(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    event_id: uuid.UUID,
    status: str,
) -> None:
    await _update(sessions, tenant_id, outbox_table, event_id, status=status)


async def _dead_event(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> uuid.UUID:
    payload = FeatureFlagChanged(
        tenant_id=tenant_id, feature="blog", enabled=True, rollout=100, variant=None, version=1
    )
    envelope = new_envelope(payload, tenant_id=tenant_id)
    async with UnitOfWork(sessions, tenant_id=tenant_id) as uow:
        await outbox.append(uow, envelope)
        await uow.commit()
    await _set_event(sessions, tenant_id, envelope.id, "dead")
    return envelope.id


async def _saga(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, state: SagaState
) -> uuid.UUID:
    saga_id = uuid.uuid4()
    async with UnitOfWork(sessions, tenant_id=tenant_id) as uow:
        await SagaLog(sessions).create(
            uow, saga_id=saga_id, saga_type="ledger-test", tenant_id=tenant_id, data={}
        )
        await uow.commit()
    await _move(sessions, tenant_id, saga_id, state)
    return saga_id


async def _move(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    saga_id: uuid.UUID,
    state: SagaState,
) -> None:
    compensating = state in COMPENSATING_STATES
    await _update(
        sessions, tenant_id, saga_instances, saga_id, state=state.value, compensating=compensating
    )


async def test_dead_events_and_parked_sagas_of_every_tenant_are_left_behind(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await read_leftovers(sessions)
    first, second = uuid.uuid4(), uuid.uuid4()
    dead = [
        (first, await _dead_event(sessions, first)),
        (second, await _dead_event(sessions, second)),
    ]
    parked = await _saga(sessions, first, SagaState.FAILED)
    await _saga(sessions, second, SagaState.COMPLETED)
    await _saga(sessions, second, SagaState.COMPENSATED)
    try:
        after = await read_leftovers(sessions)
    finally:  # the session's servers report not ready while a dead event exists
        for tenant_id, event_id in dead:
            await _set_event(sessions, tenant_id, event_id, "published")
        await _move(sessions, first, parked, SagaState.COMPENSATED)
    assert after.events_dead == before.events_dead + 2
    assert after.events_lost == before.events_lost + 2
    assert after.sagas_parked == before.sagas_parked + 1
    assert after.sagas_incomplete == before.sagas_incomplete + 1


async def test_in_flight_work_is_waited_for_only_up_to_the_bound(
    app_settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = uuid.uuid4()
    saga_id = await _saga(sessions, tenant_id, SagaState.RUNNING)  # a saga nobody runs
    try:
        found = await asyncio.to_thread(leftovers_after, app_settings, bound_s=0.5, poll_s=0.1)
    finally:  # ended, so no recovery elsewhere in the session meets a saga it cannot run
        await _move(sessions, tenant_id, saga_id, SagaState.COMPENSATED)
    assert not found.settled
    assert found.sagas_in_flight >= 1
    assert found.as_dict()["sagas_incomplete"] == found.sagas_incomplete >= 1


def test_leftovers_add_up() -> None:
    found = Leftovers(events_pending=2, events_dead=3, sagas_in_flight=0, sagas_parked=4)
    assert (found.events_lost, found.sagas_incomplete, found.settled) == (5, 4, False)
    assert Leftovers(0, 9, 0, 9).settled  # what stays left does not keep the wait going
