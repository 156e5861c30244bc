"""Alembic, driven from code: upgrade, downgrade, check, and a fingerprint of the scripts.

The fingerprint names the migrated template database, so a changed migration gets a fresh
template instead of a stale one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from alembic import command
from alembic.config import Config

from rustok_ref.config import async_database_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the given database, with no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the metadata and the migrated database differ (`alembic check`)."""
    command.check(alembic_config(database_url))


def fingerprint() -> str:
    """A short hash of every migration script and of the modules they read."""
    digest = hashlib.sha256()
    here = Path(__file__)
    sources = [
        *sorted(MIGRATIONS.rglob("*.py")),
        here.with_name("tables.py"),
        here.with_name("rls.py"),
    ]
    for path in sources:
        digest.update(path.relative_to(MIGRATIONS.parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]
