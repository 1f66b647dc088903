"""The database handle: engine, sessions, and the SQLite durability settings.

SQLite files are created mode 0600 inside a 0700 home before SQLite opens
them; SQLite gives its ``-wal`` and ``-shm`` files the database file's mode.
WAL with ``synchronous=FULL`` makes every commit durable when it returns.

``Session`` is named here for the layers above: services and authentication
are handed one as their unit of work and pass it to repositories, without
importing SQLAlchemy themselves (a contract in pyproject.toml holds them to it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session as Session  # the unit of work services are handed
from sqlalchemy.orm import sessionmaker

from runtools.server.domain.errors import ServiceUnavailable
from runtools.server.settings import Settings, prepare_home

logger = logging.getLogger("runtools.database")


#: A PostgreSQL that stops answering must not hold a request forever: a connection
#: attempt gives up after 5 s (then the answer is 503), a connection whose packets
#: go unacknowledged (a dead server or network) fails after 10 s, and idle pooled
#: connections are probed by TCP keepalives.
POSTGRES_LIVENESS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


class Availability:
    """Says once that the database went away and once that it came back.

    Every unit of work reports here, so an outage is two log lines per
    process (``{"event": "database", "available": false, ...}``, then
    ``true``), not a line or a traceback per retry of every background task.
    """

    def __init__(self) -> None:
        self.available = True
        self._lock = threading.Lock()

    def lost(self, exc: BaseException) -> None:
        if self.available:
            self._announce(False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")

    def working(self) -> None:
        if not self.available:
            self._announce(True, None)

    def _announce(self, available: bool, reason: str | None) -> None:
        with self._lock:
            if self.available == available:
                return
            self.available = available
        line = {"event": "database", "available": available}
        if reason:
            line["reason"] = reason
        (logger.info if available else logger.warning)(json.dumps(line))


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        url = settings.effective_database_url
        if settings.is_sqlite:
            _prepare_sqlite_file(settings)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                pool_timeout=10,
                connect_args=POSTGRES_LIVENESS,
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.availability = Availability()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed by the caller, rolled back on any error.

        Driver errors that mean "the database is not there" become 503.
        """
        session = self._sessions()
        try:
            yield session
        except (OperationalError, InterfaceError) as exc:
            _quiet_rollback(session)
            self.availability.lost(exc)
            raise unavailable(exc) from exc
        except Exception:
            _quiet_rollback(session)
            raise
        else:
            self.availability.working()
        finally:
            session.close()

    @contextmanager
    def failing_closed(self) -> Iterator[Session]:
        """A unit of work in which *any* database error, not only a lost connection, is a 503.

        For checks that must never let a request through unchecked (counting
        guesses): a lock timeout or a failed statement refuses, it does not
        become a 500 or an "allowed".
        """
        try:
            with self.session() as session:
                yield session
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def unavailable(exc: SQLAlchemyError) -> ServiceUnavailable:
    """The one translation of driver-level failures into a client-facing error."""
    return ServiceUnavailable("The database is unavailable; try again shortly")


def _quiet_rollback(session: Session) -> None:
    # On a dead connection the rollback fails too; the original error is the one to report.
    with suppress(SQLAlchemyError):
        session.rollback()


def _prepare_sqlite_file(settings: Settings) -> None:
    prepare_home(settings)
    path = settings.sqlite_path
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
