"""Roles rustok_app and rustok_worker, default grants, and the tenants table with its policy.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from rustok_ref.storage.rls import drop_tenant_policy, enable_tenant_rls

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Roles are cluster-wide and shared by every run database: create them only when missing,
# and never drop them in a downgrade (another database may use them).
CREATE_ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rustok_app') THEN
        CREATE ROLE rustok_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rustok_worker') THEN
        CREATE ROLE rustok_worker NOLOGIN NOSUPERUSER BYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- a concurrent migration created it first
END
$$;
"""

GRANTS = [
    "GRANT rustok_app, rustok_worker TO CURRENT_USER",
    "GRANT USAGE ON SCHEMA public TO rustok_app, rustok_worker",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
    "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO rustok_app, rustok_worker",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
    "GRANT USAGE, SELECT ON SEQUENCES TO rustok_app, rustok_worker",
]

REVOKES = [
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
    "REVOKE USAGE, SELECT ON SEQUENCES FROM rustok_app, rustok_worker",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
    "REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM rustok_app, rustok_worker",
    "REVOKE USAGE ON SCHEMA public FROM rustok_app, rustok_worker",
]


def upgrade() -> None:
    op.execute(CREATE_ROLES)
    for statement in GRANTS:
        op.execute(statement)
    op.create_table(
        "tenants",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
        sa.UniqueConstraint("domain", name=op.f("uq_tenants_domain")),
    )
    enable_tenant_rls("tenants", column="id")


def downgrade() -> None:
    drop_tenant_policy("tenants")
    op.drop_table("tenants")
    for statement in REVOKES:
        op.execute(statement)
