"""Sagas: the saga log (saga_instances) and its append-only step log (saga_steps).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from rustok_ref.storage.rls import drop_tenant_policy, enable_tenant_rls

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_OWNED = ("saga_instances", "saga_steps")
UNFINISHED = "state IN ('running', 'compensating', 'failed')"


def upgrade() -> None:
    op.create_table(
        "saga_instances",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("saga_type", sa.Text(), nullable=False),
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("step_index", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("compensating", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "state IN ('running', 'compensating', 'completed', 'compensated', 'failed')",
            name=op.f("ck_saga_instances_state"),
        ),
        sa.CheckConstraint(
            "compensating = (state IN ('compensating', 'compensated', 'failed'))",
            name=op.f("ck_saga_instances_compensating_matches_state"),
        ),
        sa.CheckConstraint(
            "step_index >= 0", name=op.f("ck_saga_instances_step_index_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saga_instances")),
    )
    op.create_index(
        "ix_saga_instances_unfinished",
        "saga_instances",
        ["state", "updated_at"],
        postgresql_where=sa.text(UNFINISHED),
    )
    op.create_table(
        "saga_steps",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("saga_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_name", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "action IN ('execute', 'compensate')", name=op.f("ck_saga_steps_action")
        ),
        sa.CheckConstraint(
            "outcome IN ('completed', 'skipped', 'error')", name=op.f("ck_saga_steps_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["saga_id"],
            ["saga_instances.id"],
            name=op.f("fk_saga_steps_saga_id_saga_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saga_steps")),
    )
    op.create_index("ix_saga_steps_saga_id", "saga_steps", ["saga_id", "id"])
    # the step log is append-only for the roles the service runs as
    op.execute("REVOKE UPDATE, DELETE ON saga_steps FROM rustok_app, rustok_worker")
    for table in TENANT_OWNED:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in TENANT_OWNED:
        drop_tenant_policy(table)
    op.drop_index("ix_saga_steps_saga_id", table_name="saga_steps")
    op.drop_table("saga_steps")
    op.drop_index(
        "ix_saga_instances_unfinished",
        table_name="saga_instances",
        postgresql_where=sa.text(UNFINISHED),
    )
    op.drop_table("saga_instances")
