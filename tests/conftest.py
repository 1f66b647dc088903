"""Fixtures shared by the whole suite.

The database under test is SQLite in a temporary home by default, or, when
``RUNTOOLS_TEST_DATABASE_URL`` names a PostgreSQL server, a fresh schema on
it for every test (dropped afterwards). Every secret a test mints is
registered, and the suite fails if any of them ever reached a log record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.databases import ON_POSTGRES, database_under_test
from support.live_server import LiveServer
from support.secret_registry import SecretRegistry


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


_REGISTRY = SecretRegistry()

#: A test's sandboxes end with its server: none may outlive the test that made it.
#: (By default they outlive the service; the restart tests drop this to test that.)
STOP_WITH_SERVICE = {"RUNTOOLS_SANDBOX_STOP_WITH_SERVICE": "true"}
os.environ.update(STOP_WITH_SERVICE)  # for servers built in process


@pytest.fixture(scope="session", autouse=True)
def logs_hold_no_secret() -> Iterator[_Capture]:
    capture = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    root.setLevel(previous)
    leaked = [s[:12] for s in _REGISTRY.values if any(s in line for line in capture.lines)]
    assert not leaked, f"secrets reached the logs: {leaked}"


@pytest.fixture(scope="session")
def secret_registry() -> SecretRegistry:
    return _REGISTRY


@pytest.fixture
def database_url() -> Iterator[str | None]:
    """None for SQLite under the test's home; a PostgreSQL URL with a private schema otherwise."""
    with database_under_test() as url:
        yield url


@pytest.fixture
def server_env(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    """Environment for a server or CLI subprocess using this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    env["RUNTOOLS_HOME"] = str(tmp_path / "home")
    env.update(STOP_WITH_SERVICE)
    if database_url:
        env["RUNTOOLS_DATABASE_URL"] = database_url
    return env


def pytest_report_header(config: pytest.Config) -> str:
    return f"runtools database under test: {'postgresql' if ON_POSTGRES else 'sqlite'}"


@pytest.fixture
def live_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(env=server_env, log_path=tmp_path / "server.log")
    yield server
    server.stop()
