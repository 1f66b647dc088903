"""The command line itself: what a mistyped command gets, with and without ``--json``."""

from __future__ import annotations

import json
import os

import pytest

from support.live_server import runtools


@pytest.fixture
def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("auth", "keys", "list", "--jsn", "--json"), "No such option: --jsn"),
        (("auth", "keys", "get", "--json"), "Missing argument 'key_id'"),
        (("sandbox", "create", "--memory", "lots", "--json"), "Invalid value for '--memory'"),
    ],
)
def test_command_line_errors_are_json_with_json(
    env: dict[str, str], args: tuple[str, ...], said: str
) -> None:
    result = runtools(*args, env=env, check=False)
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "usage_error"
    assert said in error["message"]
    assert error["requestId"] is None
    assert result.stderr.startswith("error: ")
    assert said in result.stderr


def test_command_line_errors_without_json_stay_for_people(env: dict[str, str]) -> None:
    result = runtools("auth", "keys", "list", "--jsn", env=env, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "No such option: --jsn" in result.stderr
    # After `--`, a --json is part of the command to run, not the CLI's option.
    result = runtools("sandbox", "exec", "box", "--", "--json", "--extra", env=env, check=False)
    assert result.returncode == 2
    assert result.stdout == ""


def test_help_with_json_is_still_help(env: dict[str, str]) -> None:
    result = runtools("auth", "keys", "create", "--help", "--json", env=env)
    assert "auth keys create [OPTIONS]" in result.stdout
    assert not result.stderr
