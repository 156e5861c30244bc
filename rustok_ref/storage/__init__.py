"""Storage: tables, the async engine, the unit of work, Alembic migrations."""

from rustok_ref.storage.engine import create_engine, create_sessionmaker
from rustok_ref.storage.roles import DbRole
from rustok_ref.storage.tables import metadata, tenants
from rustok_ref.storage.unit_of_work import UnitOfWork

__all__ = ["DbRole", "UnitOfWork", "create_engine", "create_sessionmaker", "metadata", "tenants"]
