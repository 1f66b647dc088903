"""``runtools serve`` and ``runtools admin`` refuse bad settings and a dead database in one line.

Before anything starts: with ``--workers N``, a worker failing on start would
be restarted by its supervisor forever, each time with a traceback. The
refusals run in-process (nothing is served); one server per home is shown
with real processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import CommandLine
from support.live_server import LiveServer, free_port, runtools


def command_line(server_env: dict[str, str], **settings: str) -> CommandLine:
    """``runtools`` with this test's home and database, and ``settings`` on top."""
    own = {k: v for k, v in server_env.items() if k.startswith("RUNTOOLS_")}
    return CommandLine({**own, **settings})


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("RUNTOOLS_DATABASE_URL", "mysql://db.example/runtools", "RUNTOOLS_DATABASE_URL"),
        ("RUNTOOLS_NAMESPACE", "Bad-NS", "RUNTOOLS_NAMESPACE"),
        ("RUNTOOLS_REDIS_URL", "http://cache.example", "RUNTOOLS_REDIS_URL"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    server_env: dict[str, str], setting: str, value: str, named: str
) -> None:
    cli = command_line(server_env, **{setting: value})
    for args in (("serve", "--workers", "2"), ("admin", "create-org", "acme")):
        result = cli(*args, check=False)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.startswith(f"error: invalid setting: {named}")
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_and_exit_3(server_env: dict[str, str]) -> None:
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/runtools"  # nothing listens there
    cli = command_line(server_env, RUNTOOLS_DATABASE_URL=nobody)
    for args in (("serve", "--workers", "2"), ("admin", "create-org", "acme")):
        result = cli(*args, check=False)
        assert result.exit_code == 3, (args, result.stderr)
        assert result.stderr.startswith("error: cannot open the database: ")
        assert "Connection refused" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_one_server_per_home_on_sqlite(server_env: dict[str, str], tmp_path: Path) -> None:
    if "RUNTOOLS_DATABASE_URL" in server_env:
        pytest.skip("the PostgreSQL case is tests/server/test_many_nodes.py")
    first = LiveServer(env=server_env, log_path=tmp_path / "first.log").start()
    try:
        second = runtools("serve", "--port", str(free_port()), env=server_env, check=False)
        assert second.returncode == 2
        assert second.stderr.startswith("error: another runtools serve already uses ")
    finally:
        first.stop()
    LiveServer(env=server_env, log_path=tmp_path / "again.log").start().stop()  # released


def test_an_unknown_log_level_is_a_usage_error(server_env: dict[str, str]) -> None:
    result = command_line(server_env)("serve", "--log-level", "loud", check=False)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --log-level must be one of debug, info, warning, error, not 'loud'\n"
    )
