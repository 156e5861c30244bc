"""Feature flags: per-tenant flags (tenant-owned, RLS).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from rustok_ref.storage.rls import drop_tenant_policy, enable_tenant_rls

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_features",
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("rollout", sa.SmallInteger(), server_default=sa.text("100"), nullable=False),
        sa.Column("variant", sa.Text(), nullable=True),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "rollout >= 0 AND rollout <= 100", name=op.f("ck_tenant_features_rollout_percent")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "feature", name=op.f("pk_tenant_features")),
    )
    enable_tenant_rls("tenant_features")


def downgrade() -> None:
    drop_tenant_policy("tenant_features")
    op.drop_table("tenant_features")
