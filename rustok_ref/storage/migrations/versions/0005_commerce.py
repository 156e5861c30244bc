"""Commerce: products, orders and their lines, stock reservations, step effects, payments,
shipments, the stand-in providers' books, and the product and order read views.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from rustok_ref.storage.rls import drop_tenant_policy, enable_tenant_rls

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_OWNED = (
    "products",
    "orders",
    "order_lines",
    "stock_reservations",
    "step_effects",
    "payments",
    "shipments",
    "standin_payments",
    "standin_shipments",
    "standin_operations",
    "standin_faults",
    "product_view",
    "order_view",
)
STANDIN_OPERATIONS = (
    "'authorise', 'capture', 'void', 'refund', 'create_shipment', 'cancel_shipment'"
)
PAYMENT_STATUSES = "status IN ('authorised', 'captured', 'voided', 'refunded')"


def _uuid(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, postgresql.UUID(as_uuid=True), nullable=nullable)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "products",
        _uuid("id"),
        _uuid("tenant_id"),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'archived')", name=op.f("ck_products_status")
        ),
        sa.CheckConstraint("price >= 0", name=op.f("ck_products_price_not_negative")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_products_stock_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("tenant_id", "sku", name="uq_products_tenant_id_sku"),
    )
    op.create_table(
        "orders",
        _uuid("id"),
        _uuid("tenant_id"),
        _uuid("customer_id", nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        _uuid("saga_id", nullable=True),
        _uuid("payment_id", nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_payment', 'paid', 'shipped', 'delivered', 'cancelled')",
            name=op.f("ck_orders_status"),
        ),
        sa.CheckConstraint("total >= 0", name=op.f("ck_orders_total_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    op.create_table(
        "order_lines",
        _uuid("order_id"),
        sa.Column("line", sa.Integer(), nullable=False),
        _uuid("tenant_id"),
        _uuid("product_id"),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_lines_quantity_positive")),
        sa.CheckConstraint("unit_price >= 0", name=op.f("ck_order_lines_unit_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_lines_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_order_lines_product_id_products")
        ),
        sa.PrimaryKeyConstraint("order_id", "line", name="pk_order_lines"),
    )
    op.create_table(
        "stock_reservations",
        sa.Column("reserve_key", sa.Text(), nullable=False),
        _uuid("product_id"),
        _uuid("tenant_id"),
        _uuid("order_id"),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("released", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_stock_reservations_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_stock_reservations_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_stock_reservations_product_id_products"),
        ),
        sa.PrimaryKeyConstraint("reserve_key", "product_id", name="pk_stock_reservations"),
    )
    op.create_table(
        "step_effects",
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        _uuid("tenant_id"),
        sa.Column(
            "applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_step_effects")),
    )
    op.create_table(
        "payments",
        _uuid("id"),
        _uuid("tenant_id"),
        _uuid("order_id"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("authorisation_id", sa.Text(), nullable=False),
        sa.Column("capture_id", sa.Text(), nullable=True),
        sa.Column("refund_id", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(PAYMENT_STATUSES, name=op.f("ck_payments_status")),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_payments_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_payments_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("order_id", name=op.f("uq_payments_order_id")),
    )
    op.create_table(
        "shipments",
        _uuid("id"),
        _uuid("tenant_id"),
        _uuid("order_id"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("booking_id", sa.Text(), nullable=False),
        sa.Column("carrier", sa.Text(), nullable=False),
        sa.Column("tracking_number", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('scheduled', 'shipped', 'cancelled')", name=op.f("ck_shipments_status")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_shipments_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint("order_id", name=op.f("uq_shipments_order_id")),
    )
    op.create_table(
        "standin_payments",
        sa.Column("id", sa.Text(), nullable=False),
        _uuid("tenant_id"),
        _uuid("order_id"),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(PAYMENT_STATUSES, name=op.f("ck_standin_payments_status")),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_standin_payments_amount_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standin_payments")),
    )
    op.create_table(
        "standin_shipments",
        sa.Column("id", sa.Text(), nullable=False),
        _uuid("tenant_id"),
        _uuid("order_id"),
        sa.Column("carrier", sa.Text(), nullable=False),
        sa.Column("tracking_number", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('scheduled', 'cancelled')", name=op.f("ck_standin_shipments_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standin_shipments")),
    )
    op.create_table(
        "standin_operations",
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        _uuid("tenant_id"),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("result_id", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            f"operation IN ({STANDIN_OPERATIONS})", name=op.f("ck_standin_operations_operation")
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_standin_operations")),
    )
    op.create_table(
        "standin_faults",
        _uuid("tenant_id"),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("failure_rate", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("latency_ms", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            f"operation IN ({STANDIN_OPERATIONS})", name=op.f("ck_standin_faults_operation")
        ),
        sa.CheckConstraint(
            "failure_rate >= 0 AND failure_rate <= 1",
            name=op.f("ck_standin_faults_failure_rate_range"),
        ),
        sa.CheckConstraint("latency_ms >= 0", name=op.f("ck_standin_faults_latency_not_negative")),
        sa.PrimaryKeyConstraint("tenant_id", "operation", name="pk_standin_faults"),
    )
    op.create_table(
        "product_view",
        _uuid("product_id"),
        _uuid("tenant_id"),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _uuid("last_event_id"),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_product_view")),
    )
    op.create_index("ix_product_view_tenant_id_sku", "product_view", ["tenant_id", "sku"])
    op.create_table(
        "order_view",
        _uuid("order_id"),
        _uuid("tenant_id"),
        _uuid("customer_id", nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("lines", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _uuid("payment_id", nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        _uuid("last_event_id"),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_view")),
    )
    op.create_index("ix_order_view_tenant_id_placed_at", "order_view", ["tenant_id", "placed_at"])
    for table in TENANT_OWNED:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TENANT_OWNED:
        drop_tenant_policy(table)
    op.drop_index("ix_order_view_tenant_id_placed_at", table_name="order_view")
    op.drop_index("ix_product_view_tenant_id_sku", table_name="product_view")
    for table in reversed(TENANT_OWNED):
        op.drop_table(table)
