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
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
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


# Commerce (issue 6). Orders and payments are event-sourced: each row is the fold of its
# aggregate's events in `event_store`, written in the same transaction.
def _timestamps() -> list[Column[Any]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


products = Table(
    "products",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("sku", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("price", BigInteger, nullable=False),  # minor units of `currency`
    Column("currency", Text, nullable=False),
    Column("stock", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    *_timestamps(),
    UniqueConstraint("tenant_id", "sku", name="uq_products_tenant_id_sku"),
    CheckConstraint("price >= 0", name="price_not_negative"),
    CheckConstraint("stock >= 0", name="stock_not_negative"),
    CheckConstraint("status IN ('draft', 'published', 'archived')", name="status"),
    info=TENANT_OWNED,
)

orders = Table(
    "orders",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("customer_id", UUID(as_uuid=True), nullable=True),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("saga_id", UUID(as_uuid=True), nullable=True),
    Column("payment_id", UUID(as_uuid=True), nullable=True),
    Column("cancel_reason", Text, nullable=True),
    Column("version", Integer, nullable=False),  # the aggregate's version in event_store
    *_timestamps(),
    CheckConstraint("total >= 0", name="total_not_negative"),
    CheckConstraint(
        "status IN ('draft', 'pending_payment', 'paid', 'shipped', 'delivered', 'cancelled')",
        name="status",
    ),
    info=TENANT_OWNED,
)

order_lines = Table(
    "order_lines",
    metadata,
    Column(
        "order_id", UUID(as_uuid=True), ForeignKey("orders.id", ondelete="CASCADE"), nullable=False
    ),
    Column("line", Integer, nullable=False),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("product_id", UUID(as_uuid=True), ForeignKey("products.id"), nullable=False),
    Column("sku", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    PrimaryKeyConstraint("order_id", "line", name="pk_order_lines"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
    info=TENANT_OWNED,
)

stock_reservations = Table(
    "stock_reservations",
    metadata,
    # stock a checkout holds, under the idempotency key of the step that took it
    Column("reserve_key", Text, nullable=False),
    Column("product_id", UUID(as_uuid=True), ForeignKey("products.id"), nullable=False),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("order_id", UUID(as_uuid=True), ForeignKey("orders.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("released", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("reserve_key", "product_id", name="pk_stock_reservations"),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    info=TENANT_OWNED,
)

step_effects = Table(
    "step_effects",
    metadata,
    # a saga step's local effect, applied once: its idempotency key, inserted with the effect
    Column("idempotency_key", Text, primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    info=TENANT_OWNED,
)

payments = Table(
    "payments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("order_id", UUID(as_uuid=True), ForeignKey("orders.id"), nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("authorisation_id", Text, nullable=False),
    Column("capture_id", Text, nullable=True),
    Column("refund_id", Text, nullable=True),
    Column("version", Integer, nullable=False),  # the aggregate's version in event_store
    *_timestamps(),
    CheckConstraint("amount >= 0", name="amount_not_negative"),
    CheckConstraint("status IN ('authorised', 'captured', 'voided', 'refunded')", name="status"),
    info=TENANT_OWNED,
)

shipments = Table(
    "shipments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("order_id", UUID(as_uuid=True), ForeignKey("orders.id"), nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("booking_id", Text, nullable=False),
    Column("carrier", Text, nullable=False),
    Column("tracking_number", Text, nullable=False),
    Column("version", Integer, nullable=False),
    *_timestamps(),
    CheckConstraint("status IN ('scheduled', 'shipped', 'cancelled')", name="status"),
    info=TENANT_OWNED,
)

# The stand-in payment and shipping providers' own books (`commerce/providers/standin.py`):
# what an external service would keep on its side, here in Postgres so it survives a crash.
STANDIN_OPERATIONS = (
    "'authorise', 'capture', 'void', 'refund', 'create_shipment', 'cancel_shipment'"
)

standin_payments = Table(
    "standin_payments",
    metadata,
    Column("id", Text, primary_key=True),  # the authorisation id
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("order_id", UUID(as_uuid=True), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    *_timestamps(),
    CheckConstraint("amount >= 0", name="amount_not_negative"),
    CheckConstraint("status IN ('authorised', 'captured', 'voided', 'refunded')", name="status"),
    info=TENANT_OWNED,
)

standin_shipments = Table(
    "standin_shipments",
    metadata,
    Column("id", Text, primary_key=True),  # the booking id
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("order_id", UUID(as_uuid=True), nullable=False),
    Column("carrier", Text, nullable=False),
    Column("tracking_number", Text, nullable=False),
    Column("status", Text, nullable=False),
    *_timestamps(),
    CheckConstraint("status IN ('scheduled', 'cancelled')", name="status"),
    info=TENANT_OWNED,
)

standin_operations = Table(
    "standin_operations",
    metadata,
    # every call that took effect or was a no-op, by its idempotency key: a repeated key
    # answers what the first call did
    Column("idempotency_key", Text, primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("operation", Text, nullable=False),
    Column("reference", Text, nullable=True),  # the authorisation or booking acted on
    Column("amount", BigInteger, nullable=True),
    Column("result_id", Text, nullable=True),  # a capture or refund id
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"operation IN ({STANDIN_OPERATIONS})", name="operation"),
    info=TENANT_OWNED,
)

standin_faults = Table(
    "standin_faults",
    metadata,
    # injected faults per tenant and operation (a missing row: no fault)
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("operation", Text, nullable=False),
    Column("failure_rate", Float, nullable=False, server_default=text("0")),
    Column("latency_ms", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "operation", name="pk_standin_faults"),
    CheckConstraint(f"operation IN ({STANDIN_OPERATIONS})", name="operation"),
    CheckConstraint("failure_rate >= 0 AND failure_rate <= 1", name="failure_rate_range"),
    CheckConstraint("latency_ms >= 0", name="latency_not_negative"),
    info=TENANT_OWNED,
)

# The product and order read views (projections the API's list endpoints read).
product_view = Table(
    "product_view",
    metadata,
    # a denormalised copy of the product, refreshed from `products` on each of its events
    Column("product_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("sku", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("stock", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_event_id", UUID(as_uuid=True), nullable=False),
    Index("ix_product_view_tenant_id_sku", "tenant_id", "sku"),
    info=TENANT_OWNED,
)

order_view = Table(
    "order_view",
    metadata,
    # an order as its events tell it, from the payloads alone
    Column("order_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("customer_id", UUID(as_uuid=True), nullable=True),
    Column("status", Text, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("lines", Integer, nullable=False, server_default=text("0")),
    Column("payment_id", UUID(as_uuid=True), nullable=True),
    Column("cancel_reason", Text, nullable=True),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=True),
    Column("last_event_id", UUID(as_uuid=True), nullable=False),
    Index("ix_order_view_tenant_id_placed_at", "tenant_id", "placed_at"),
    info=TENANT_OWNED,
)

# Feature flags (issue 6, review T3): one row per tenant and feature.
tenant_features = Table(
    "tenant_features",
    metadata,
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("feature", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("rollout", SmallInteger, nullable=False, server_default=text("100")),  # percent
    Column("variant", Text, nullable=True),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("version", Integer, nullable=False, server_default=text("1")),
    *_timestamps(),
    PrimaryKeyConstraint("tenant_id", "feature", name="pk_tenant_features"),
    CheckConstraint("rollout >= 0 AND rollout <= 100", name="rollout_percent"),
    info=TENANT_OWNED,
)

# API keys (issue 7): the SHA-256 of a random 32-byte secret under a public key id, so a
# request costs one indexed lookup (cached) and one hash, never a slow password hash.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), ForeignKey("tenants.id"), nullable=False),
    Column("role", Text, nullable=False),
    Column("secret_sha256", Text, nullable=False),
    Column("label", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role IN ('admin', 'staff', 'customer')", name="role_known"),
    info=TENANT_OWNED,
)
