"""The command line itself: what a mistyped command gets, with and without ``--json``."""

from __future__ import annotations

import pytest

from support.cli import CommandLine


@pytest.fixture
def cli() -> CommandLine:
    """``runtools`` with no setting of the caller's (usage errors need no server)."""
    return CommandLine({})


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("auth", "keys", "list", "--jsn", "--json"), "No such option: --jsn"),
        (("auth", "keys", "get", "--json"), "Missing argument 'key_id'"),
        (("sandbox", "create", "--memory", "lots", "--json"), "Invalid value for '--memory'"),
    ],
)
def test_command_line_errors_are_json_with_json(
    cli: CommandLine, args: tuple[str, ...], said: str
) -> None:
    result = cli(*args, check=False)
    assert result.exit_code == 2
    error = result.json["error"]
    assert error["code"] == "usage_error"
    assert said in error["message"]
    assert error["requestId"] is None
    assert result.stderr.startswith("error: ")
    assert said in result.stderr


def test_command_line_errors_without_json_stay_for_people(cli: CommandLine) -> None:
    result = cli("auth", "keys", "list", "--jsn", check=False)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "No such option: --jsn" in result.stderr
    # After `--`, a --json is part of the command to run, not the CLI's option.
    result = cli("sandbox", "exec", "box", "--", "--json", "--extra", check=False)
    assert result.exit_code == 2
    assert result.stdout == ""


def test_help_with_json_is_still_help(cli: CommandLine) -> None:
    result = cli("auth", "keys", "create", "--help", "--json")
    assert "auth keys create [OPTIONS]" in result.stdout
    assert not result.stderr
