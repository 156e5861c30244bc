"""Alembic environment: online migrations only, on a sync psycopg connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from rustok_ref.storage.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("the migration URL is not set; use rustok_ref.storage.migrate")

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
