"""What a load run left behind, read from the run's database once the load has stopped:
events never published (pending or dead, every tenant) and sagas that neither completed nor
compensated. These are the `events_lost` and `sagas_incomplete` thresholds.

The driver reads PostgreSQL itself, as the relay's worker role, because the API's admin
views show one tenant's outbox and no saga counts; a run against `--target-url` has no
database to read, so both are not measured there. Work still in flight when the load stops
(the relay's last batches, a checkout's saga, one a fault interrupted, which the API's
periodic recovery takes up) is given `bound_s` to finish before it counts as left behind.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings
from rustok_ref.events.relay import backlog
from rustok_ref.saga.log import UNFINISHED, SagaState
from rustok_ref.storage import DbRole, UnitOfWork, create_engine, create_sessionmaker
from rustok_ref.storage.tables import saga_instances

__all__ = ["IN_FLIGHT_BOUND_S", "Leftovers", "leftovers_after", "read_leftovers"]

# > the API's periodic saga recovery (a saga idle 10 s, looked for every 10 s) and the
# relay's drain of a full-size run's last seconds
IN_FLIGHT_BOUND_S: Final = 60.0


@dataclass(frozen=True)
class Leftovers:
    events_pending: int
    events_dead: int
    sagas_in_flight: int  # running or compensating
    sagas_parked: int  # failed: a compensation gave up; needs `saga retry`

    @property
    def events_lost(self) -> int:
        return self.events_pending + self.events_dead

    @property
    def sagas_incomplete(self) -> int:
        return self.sagas_in_flight + self.sagas_parked

    @property
    def settled(self) -> bool:
        """Nothing is still being worked on (what is left stays left)."""
        return self.events_pending == 0 and self.sagas_in_flight == 0

    def as_dict(self) -> dict[str, int]:
        return {
            **asdict(self),
            "events_lost": self.events_lost,
            "sagas_incomplete": self.sagas_incomplete,
        }


async def read_leftovers(sessions: async_sessionmaker[AsyncSession]) -> Leftovers:
    """The outbox backlog and the unfinished sagas of every tenant, now."""
    found = await backlog(sessions)
    query = (
        select(saga_instances.c.state, func.count())
        .where(saga_instances.c.state.in_([*UNFINISHED, SagaState.FAILED]))
        .group_by(saga_instances.c.state)
    )
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        sagas = {SagaState(state): int(count) for state, count in await uow.session.execute(query)}
    return Leftovers(
        events_pending=found.pending,
        events_dead=found.dead,
        sagas_in_flight=sum(sagas.get(state, 0) for state in UNFINISHED),
        sagas_parked=sagas.get(SagaState.FAILED, 0),
    )


def leftovers_after(
    settings: Settings, *, bound_s: float = IN_FLIGHT_BOUND_S, poll_s: float = 0.5
) -> Leftovers:
    """`read_leftovers` once nothing is in flight, or as it stands after `bound_s`."""

    async def poll() -> Leftovers:
        engine = create_engine(settings)
        try:
            sessions = create_sessionmaker(engine)
            deadline = time.monotonic() + bound_s
            while True:
                found = await read_leftovers(sessions)
                if found.settled or time.monotonic() >= deadline:
                    return found
                await asyncio.sleep(poll_s)
        finally:
            await engine.dispose()

    return asyncio.run(poll())
