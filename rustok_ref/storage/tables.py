"""SQLAlchemy Core tables: the one schema Alembic migrates and every adapter queries.

Each table declares its tenancy in `info["tenancy"]`: "owned" tables carry row-level
security on `app.tenant_id` (a test checks the live database for it), "global" ones do not.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

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
