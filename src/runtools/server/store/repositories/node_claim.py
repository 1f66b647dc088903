"""One ``runtools serve`` per node: the claim a server holds on its node's name.

A node's records (its sandboxes) are reconciled by the node itself: on a
clean stop it fails and reaps every live sandbox it names. Two server
processes running under one node name (the default is the host name) would
each do that to the other's sandboxes. So ``serve`` claims the name before
it starts, and a second claim fails:

- on PostgreSQL, a session advisory lock keyed by the schema and the node
  name, held on a connection of its own for as long as the server runs;
- on SQLite, an exclusive ``flock`` on ``serve.lock`` in the home (one
  database file, one server process).

Whatever the database, a server also holds its sandbox state directory
(``RUNTOOLS_SANDBOX_STATE_DIR``, by default ``sandboxes`` in the home) with an
exclusive ``flock`` on ``serve.lock`` there: on start and stop a node reaps
whatever it finds there (and in the cgroups named after it) that its own
database does not know, so two servers sharing it (one on SQLite and one on
PostgreSQL in one home, or two nodes of one database) would tear down each
other's sandboxes.

The worker processes of one ``serve --workers N`` are one node: the parent
holds the claim for all of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from runtools.server.settings import Settings


class NodeTaken(Exception):
    """Another running server holds this node's name; the message says which."""


@contextlib.contextmanager
def node_claim(settings: Settings) -> Iterator[None]:
    """Hold this node's name for the duration of the block, or raise ``NodeTaken``."""
    with contextlib.ExitStack() as held:
        held.enter_context(_home_lock(settings) if settings.is_sqlite else _advisory_lock(settings))
        held.enter_context(_sandbox_root_lock(settings))
        yield


def _exclusive_flock(path: os.PathLike[str] | str) -> int | None:
    """An open descriptor holding ``path``'s exclusive lock, or None if another holds it."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _home_lock(settings: Settings) -> Iterator[None]:
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _exclusive_flock(settings.home / "serve.lock")
    if fd is None:
        raise NodeTaken(
            f"another runtools serve already uses {settings.home} "
            "(SQLite serves one process; stop it, or set RUNTOOLS_HOME for another)"
        )
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _sandbox_root_lock(settings: Settings) -> Iterator[None]:
    root = settings.sandbox_root
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _exclusive_flock(root / "serve.lock")
    if fd is None:
        raise NodeTaken(
            f"another runtools serve already uses {root} for its sandboxes; "
            "stop it, or give this server a RUNTOOLS_HOME (or RUNTOOLS_SANDBOX_STATE_DIR) "
            "of its own"
        )
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _advisory_lock(settings: Settings) -> Iterator[None]:
    engine = create_engine(settings.effective_database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            key = _lock_key(connection, settings.sandbox_node)
            taken = connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            connection.commit()
            if not taken:
                raise NodeTaken(
                    f"another runtools serve already runs as node '{settings.sandbox_node}' "
                    "on this database: give each server its own RUNTOOLS_SANDBOX_NODE"
                )
            yield  # the session lock lives as long as this connection
    finally:
        engine.dispose()


def _lock_key(connection: Connection, node: str) -> int:
    """A signed 64-bit key for ``(schema, node)``: deployments in other schemas never meet."""
    schema = connection.scalar(text("SELECT current_schema()"))
    digest = hashlib.sha256(f"runtools-node:{schema}:{node}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
