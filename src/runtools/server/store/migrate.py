"""Apply Alembic migrations on start, from the migrations shipped in the package.

On PostgreSQL an advisory lock serialises concurrent starts (several workers
or nodes booting at once); SQLite's own write lock does the same there.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from runtools.server.store.database import Database

_MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_ID = 7_261_180_901


def upgrade(database: Database) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
