"""Feature flags: per-tenant flags (tenant-owned, RLS).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_MATCH = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


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
    op.execute("ALTER TABLE tenant_features ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenant_features FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON tenant_features USING (tenant_id = {TENANT_MATCH}) "
        f"WITH CHECK (tenant_id = {TENANT_MATCH})"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS tenant_isolation ON tenant_features")
    op.drop_table("tenant_features")
