"""The database a test (or a module of tests) runs on: SQLite, or a private PostgreSQL schema.

``RUNTOOLS_TEST_DATABASE_URL`` naming a PostgreSQL server selects the latter:
each holder gets a fresh schema there, dropped when it is done.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

TEST_DATABASE_URL = os.environ.get("RUNTOOLS_TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DATABASE_URL.startswith("postgres")


@contextmanager
def database_under_test() -> Iterator[str | None]:
    """None for SQLite (under the holder's home); a PostgreSQL URL with a private schema."""
    if not ON_POSTGRES:
        yield None
        return
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    plain = TEST_DATABASE_URL
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in plain else "?"
    try:
        yield f"{plain}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
