"""A database that does not answer is a prompt "unavailable", never a hang."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from runtools.server.settings import Settings
from runtools.server.store.database import Database


def test_a_postgresql_that_accepts_but_never_answers_is_given_up_on(tmp_path: Path) -> None:
    # A socket that takes connections (the kernel completes them) and never says a word:
    # what a hung or overloaded server looks like to a client.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/runtools"
    database = Database(Settings(home=tmp_path, database_url=url, _env_file=None))  # type: ignore[call-arg]
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
