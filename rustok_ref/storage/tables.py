"""SQLAlchemy Core tables: the one schema Alembic migrates and every adapter queries.

Each table declares its tenancy in `info["tenancy"]`: "owned" tables carry row-level
security on `app.tenant_id` (a test checks the live database for it), "global" ones do not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TENANT_OWNED = {"tenancy": "owned"}
GLOBAL = {"tenancy": "global"}

tenants = Table(
    "tenants",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("slug", Text, nullable=False, unique=True),
    Column("domain", Text, nullable=True, unique=True),
    Column("name", Text, nullable=False),
    Column("settings", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    info={**TENANT_OWNED, "tenant_column": "id"},
)


def tenant_column(table: Table) -> str:
    """The column a tenant-owned table's policy compares with `app.tenant_id`."""
    return str(table.info.get("tenant_column", "tenant_id"))


# Events (issue 4). Envelope columns shared by the outbox and the event store.
def _envelope_columns() -> list[Column[Any]]:
    return [
        Column("schema_version", SmallInteger, nullable=False),
        Column("tenant_id", UUID(as_uuid=True), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("correlation_id", Text, nullable=False),
        Column("causation_id", UUID(as_uuid=True), nullable=True),
        Column("actor_id", UUID(as_uuid=True), nullable=True),
        Column("traceparent", Text, nullable=True),
    ]


outbox = Table(
    "outbox",
    metadata,
    # Debezium's outbox shape: id (the event id, consumers dedupe on it), aggregatetype (the
    # stream), aggregateid (the ordering key), type, payload; plus the relay's bookkeeping.
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("seq", BigInteger, Identity(), nullable=False),
    Column("aggregatetype", Text, nullable=False),
    Column("aggregateid", UUID(as_uuid=True), nullable=False),
    Column("aggregate_version", Integer, nullable=True),
    Column("type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    *_envelope_columns(),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("claimed_by", Text, nullable=True),
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("status IN ('pending', 'published', 'dead')", name="status"),
    # the relay's claim: the oldest unpublished (pending or dead) row of each aggregate
    Index(
        "ix_outbox_unpublished",
        "aggregatetype",
        "aggregateid",
        "seq",
        postgresql_where=text("status <> 'published'"),
    ),
    Index(
        "ix_outbox_published_at",
        "published_at",
        postgresql_where=text("status = 'published'"),
    ),
    info=TENANT_OWNED,
)

processed_events = Table(
    "processed_events",
    metadata,
    # a consumer's idempotency record: one row per (event, consumer), pruned after the window
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("consumer", Text, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("event_id", "consumer", name="pk_processed_events"),
    Index("ix_processed_events_processed_at", "processed_at"),
    info=GLOBAL,
)

event_store = Table(
    "event_store",
    metadata,
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("aggregate_type", Text, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    *_envelope_columns(),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("aggregate_id", "version", name="pk_event_store"),
    CheckConstraint("version >= 1", name="version_positive"),
    info=TENANT_OWNED,
)

event_snapshots = Table(
    "event_snapshots",
    metadata,
    # the latest snapshot of an aggregate; `state_schema` retires snapshots of an old shape
    Column("aggregate_id", UUID(as_uuid=True), primary_key=True),
    Column("aggregate_type", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("state_schema", Integer, nullable=False),
    Column("state", JSONB, nullable=False),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    info=TENANT_OWNED,
)


# Sagas (issue 6): the saga log, an instance per saga plus its append-only step log.
saga_instances = Table(
    "saga_instances",
    metadata,
    # Eventuate's saga_instance shape (type, state, data, compensating) plus MassTransit's
    # version for optimistic concurrency; `attempts` counts the runs that took the saga up.
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("saga_type", Text, nullable=False),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("state", Text, nullable=False),
    Column("step_index", Integer, nullable=False, server_default=text("0")),
    Column("data", JSONB, nullable=False),
    Column("compensating", Boolean, nullable=False, server_default=text("false")),
    Column("failure_reason", Text, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(
        "state IN ('running', 'compensating', 'completed', 'compensated', 'failed')",
        name="state",
    ),
    CheckConstraint(
        "compensating = (state IN ('compensating', 'compensated', 'failed'))",
        name="compensating_matches_state",
    ),
    CheckConstraint("step_index >= 0", name="step_index_not_negative"),
    # recovery's scan: sagas left unfinished (and the parked ones), oldest change first
    Index(
        "ix_saga_instances_unfinished",
        "state",
        "updated_at",
        postgresql_where=text("state IN ('running', 'compensating', 'failed')"),
    ),
    info=TENANT_OWNED,
)

saga_steps = Table(
    "saga_steps",
    metadata,
    # append-only (the migration revokes UPDATE and DELETE): one row per call's outcome
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "saga_id",
        UUID(as_uuid=True),
        ForeignKey("saga_instances.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("step_name", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("action IN ('execute', 'compensate')", name="action"),
    CheckConstraint("outcome IN ('completed', 'skipped', 'error')", name="outcome"),
    Index("ix_saga_steps_saga_id", "saga_id", "id"),
    info=TENANT_OWNED,
)


# Projections (issue 4): read tables the stream consumers keep, each rebuildable from events.
tenant_view = Table(
    "tenant_view",
    metadata,
    # one row per tenant, fed by the tenant events (rustok_ref.events.projections)
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    Column("locales", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("created_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updates", Integer, nullable=False, server_default=text("0")),
    Column("events", Integer, nullable=False, server_default=text("0")),
    Column("last_event_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=True),
    info=TENANT_OWNED,
)
