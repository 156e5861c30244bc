"""A generic append-only event store: an aggregate's state is the fold of its events.

RusToK has no event sourcing (reference §8); review item A3 proposes it for orders and
payments. An aggregate is described by an `AggregateSpec` (its name, initial state, pure
`apply(state, event) -> state`, and how often to snapshot); `EventStore` loads it (from the
latest snapshot, then the events after it) and appends new events with optimistic
concurrency: the caller says which version it decided on, and a concurrent writer that got
there first turns the append into a `ConflictError` (the primary key (aggregate_id, version)
settles a race that the version check alone cannot).

Events are catalogue envelopes, so they are validated like any other and can go to the
outbox in the same unit of work (`outbox.append(uow, *events)`): the store does not do it
for the caller, because not every stored event is one to publish.

Why not a library: `eventsourcing` and `eventsource-py` bring their own tables, sessions
and drivers (eventsourcing's PostgreSQL recorder is synchronous on its own pool,
eventsource-py runs on asyncpg), so an append could not share the caller's unit of work
with its outbox rows, role and tenant (row-level security). The store is a few statements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from psycopg.errors import UniqueViolation
from pydantic import TypeAdapter
from sqlalchemy import Text, bindparam, cast, func, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from rustok_ref.errors import ConflictError
from rustok_ref.events.envelope import CATALOGUE, METADATA_FIELDS, Catalogue, EventEnvelope
from rustok_ref.storage.tables import event_snapshots, event_store
from rustok_ref.storage.unit_of_work import UnitOfWork

S = TypeVar("S")

_PAYLOAD = cast(bindparam("payload_text", type_=Text), JSONB)


@dataclass(frozen=True, slots=True)
class AggregateSpec(Generic[S]):
    """How to rebuild one kind of aggregate from its events."""

    name: str
    """The aggregate type its events name (`EventEnvelope.aggregate_type`)."""
    initial: Callable[[], S]
    apply: Callable[[S, EventEnvelope], S]
    state_type: type[S]
    """Snapshots are this type's JSON (through pydantic)."""
    snapshot_every: int = 0
    """Snapshot each time the version crosses a multiple of this; 0 never snapshots."""
    state_schema: int = 1
    """Bump it when the state's shape changes: older snapshots are then ignored."""


@dataclass(frozen=True, slots=True)
class Versioned(Generic[S]):
    """An aggregate's state as of `version` (0: no event yet)."""

    aggregate_id: UUID
    version: int
    state: S

    def next_version(self, offset: int = 1) -> int:
        """The version the `offset`-th new event will carry."""
        return self.version + offset


class EventStore(Generic[S]):
    """Loads and appends one kind of aggregate inside the caller's unit of work."""

    def __init__(self, spec: AggregateSpec[S], catalogue: Catalogue | None = None) -> None:
        if spec.snapshot_every < 0:
            raise ValueError("snapshot_every must be 0 (never) or positive")
        self.spec = spec
        self._catalogue = CATALOGUE if catalogue is None else catalogue
        self._state = TypeAdapter(spec.state_type)

    async def load(
        self, uow: UnitOfWork, aggregate_id: UUID, *, use_snapshot: bool = True
    ) -> Versioned[S]:
        """The current state: the latest usable snapshot, then the events after it."""
        state, version = self.spec.initial(), 0
        if use_snapshot and self.spec.snapshot_every:
            snapshot = (
                await uow.session.execute(
                    select(event_snapshots.c.version, event_snapshots.c.state).where(
                        event_snapshots.c.aggregate_id == aggregate_id,
                        event_snapshots.c.aggregate_type == self.spec.name,
                        event_snapshots.c.state_schema == self.spec.state_schema,
                    )
                )
            ).first()
            if snapshot is not None:
                state, version = self._state.validate_python(snapshot.state), snapshot.version
        events = await self.events(uow, aggregate_id, after_version=version)
        for event in events:
            state = self.spec.apply(state, event)
        return Versioned(aggregate_id, version + len(events), state)

    async def events(
        self, uow: UnitOfWork, aggregate_id: UUID, *, after_version: int = 0
    ) -> list[EventEnvelope]:
        """The aggregate's events after `after_version`, in order (replay)."""
        rows = await uow.session.execute(
            select(event_store)
            .where(
                event_store.c.aggregate_id == aggregate_id,
                event_store.c.aggregate_type == self.spec.name,
                event_store.c.version > after_version,
            )
            .order_by(event_store.c.version)
        )
        return [self._envelope(row) for row in rows.mappings()]

    async def append(
        self, uow: UnitOfWork, current: Versioned[S], events: Sequence[EventEnvelope]
    ) -> Versioned[S]:
        """Store `events` as the versions after `current.version` and return the new state.

        Each event must name this aggregate and carry its new version
        (`current.next_version(i)`). Another writer that appended first (committed, or
        committing concurrently) makes this a `ConflictError`: reload and decide again.
        """
        if not events:
            return current
        for offset, event in enumerate(events, start=1):
            expected = (self.spec.name, current.aggregate_id, current.next_version(offset))
            found = (event.aggregate_type, event.aggregate_id, event.aggregate_version)
            if found != expected:
                raise ValueError(f"event {event.id} is {found}, expected {expected}")
        stored = await uow.session.scalar(
            select(func.coalesce(func.max(event_store.c.version), 0)).where(
                event_store.c.aggregate_id == current.aggregate_id
            )
        )
        if stored != current.version:
            raise self._conflict(current, stored)
        try:
            await uow.session.execute(
                insert(event_store).values(payload=_PAYLOAD), [self._row(e) for e in events]
            )
        except IntegrityError as exc:
            if isinstance(exc.orig, UniqueViolation):
                raise self._conflict(current, None) from exc
            raise
        state = current.state
        for event in events:
            state = self.spec.apply(state, event)
        after = Versioned(current.aggregate_id, current.version + len(events), state)
        every = self.spec.snapshot_every
        if every and after.version // every > current.version // every:
            await self._snapshot(uow, after, events[-1].tenant_id)
        return after

    async def _snapshot(self, uow: UnitOfWork, versioned: Versioned[S], tenant_id: UUID) -> None:
        table = event_snapshots
        statement = pg_insert(table).values(
            aggregate_id=versioned.aggregate_id,
            aggregate_type=self.spec.name,
            version=versioned.version,
            state_schema=self.spec.state_schema,
            state=cast(bindparam("state_text", type_=Text), JSONB),
            tenant_id=tenant_id,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.aggregate_id],
            set_={
                "version": statement.excluded.version,
                "state_schema": statement.excluded.state_schema,
                "state": statement.excluded.state,
                "created_at": func.now(),
            },
            where=table.c.version < statement.excluded.version,
        )
        state_text = self._state.dump_json(versioned.state).decode()
        await uow.session.execute(statement, {"state_text": state_text})

    def _row(self, event: EventEnvelope) -> dict[str, Any]:
        return {
            "aggregate_id": event.aggregate_id,
            "version": event.aggregate_version,
            "aggregate_type": event.aggregate_type,
            "event_id": event.id,
            "event_type": event.event_type,
            "payload_text": event.payload_json.decode(),
            **event.metadata(),
        }

    def _envelope(self, row: Any) -> EventEnvelope:
        return self._catalogue.restore(
            event_type=row["event_type"],
            event_id=row["event_id"],
            payload=row["payload"],
            aggregate_version=row["version"],
            **{name: row[name] for name in METADATA_FIELDS},
        )

    def _conflict(self, current: Versioned[S], stored: int | None) -> ConflictError:
        now = "changed concurrently" if stored is None else f"is at version {stored}"
        return ConflictError(
            f"{self.spec.name} {current.aggregate_id} {now}; "
            f"the change was decided at version {current.version}",
            extra={"aggregate_id": str(current.aggregate_id), "expected": current.version},
        )
