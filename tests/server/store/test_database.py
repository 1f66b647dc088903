"""A database that does not answer is a prompt "unavailable", never a hang."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtools.server.domain.clock import FrozenClock
from runtools.server.domain.errors import ServiceUnavailable, Throttled
from runtools.server.runtime import Runtime
from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.models import ServiceSecret


def test_a_postgresql_that_accepts_but_never_answers_is_given_up_on(tmp_path: Path) -> None:
    # A socket that takes connections (the kernel completes them) and never says a word:
    # what a hung or overloaded server looks like to a client.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/runtools"
    database = Database(Settings(home=tmp_path, database_url=url, _env_file=None))
    outcome: list[bool] = []
    started = time.monotonic()
    pinger = threading.Thread(target=lambda: outcome.append(database.ping()), daemon=True)
    try:
        pinger.start()
        pinger.join(timeout=30)  # without a connect timeout this waits forever
        assert outcome == [False], "still waiting for the silent server after 30 s"
        assert time.monotonic() - started < 15
    finally:
        database.dispose()
        silent.close()


def _store_twice(session: Session, clock: FrozenClock) -> None:
    for _ in range(2):  # the second breaks the primary key: an IntegrityError, not a lost link
        session.add(ServiceSecret(name="twice", value="v", created_at=clock.now()))
        session.flush()


def test_a_unit_of_work_failing_closed_answers_any_database_error_as_unavailable(
    runtime: Runtime, clock: FrozenClock
) -> None:
    with pytest.raises(ServiceUnavailable), runtime.database.failing_closed() as session:
        _store_twice(session, clock)
    # An ordinary unit of work leaves such an error to its caller.
    with pytest.raises(IntegrityError), runtime.database.session() as session:
        _store_twice(session, clock)
    # Errors of the work itself are not the database's: they pass through unchanged.
    with pytest.raises(Throttled), runtime.database.failing_closed():
        raise Throttled("Too many", retry_after=1)
    with runtime.database.session() as session:
        assert session.get(ServiceSecret, "twice") is None  # nothing half written
