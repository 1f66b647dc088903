"""Global options in any position: ``--api-url``, ``--api-key`` and ``--json``, before or after."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from runtools.cli.app import app
from runtools.cli.global_options import MissingValue, hoist
from support.cli import CommandLine
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp

from .conftest import Person, mint

ROOT = typer.main.get_command(app)


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        (
            ["auth", "status", "--api-url", "http://x", "--json"],
            ["--api-url", "http://x", "auth", "status", "--json"],
        ),
        (["--json", "auth", "keys", "list"], ["auth", "keys", "list", "--json"]),
        (["auth", "--json", "keys", "list"], ["auth", "keys", "list", "--json"]),
        (["auth", "--api-key=K", "status"], ["--api-key=K", "auth", "status"]),
        (
            ["auth", "keys", "list", "--limit", "5", "--api-key", "K"],
            ["--api-key", "K", "auth", "keys", "list", "--limit", "5"],
        ),
        # A value of the command's own option is a value, whatever it looks like.
        (
            ["auth", "keys", "update", "k", "--name", "--json"],
            ["auth", "keys", "update", "k", "--name", "--json"],
        ),
        (
            ["auth", "keys", "update", "k", "--name", "--api-url"],
            ["auth", "keys", "update", "k", "--name", "--api-url"],
        ),
        # After --, everything is the command's to run.
        (
            ["sandbox", "exec", "box", "--", "cmd", "--json", "--api-url", "u"],
            ["sandbox", "exec", "box", "--", "cmd", "--json", "--api-url", "u"],
        ),
        (
            ["--api-url", "u", "sandbox", "exec", "box", "--json", "--", "--json"],
            ["--api-url", "u", "sandbox", "exec", "box", "--json", "--", "--json"],
        ),
    ],
)
def test_global_options_move_to_where_they_belong(typed: list[str], parsed: list[str]) -> None:
    assert hoist(ROOT, typed) == parsed


def test_a_global_option_without_its_value_is_a_usage_error() -> None:
    with pytest.raises(MissingValue, match="'--api-url' requires an argument"):
        hoist(ROOT, ["auth", "status", "--api-url"])
    ran = CommandLine({})("auth", "status", "--json", "--api-url", check=False)
    assert ran.exit_code == 2
    assert ran.json["error"]["code"] == "usage_error"


def test_api_url_api_key_and_json_work_after_the_command(
    served: ServedApp, ada: Person, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    cli = CommandLine({"RUNTOOLS_CONFIG_DIR": str(tmp_path / "cli")})  # no RUNTOOLS_API_URL
    after = cli("auth", "status", "--api-url", served.url, "--api-key", ada.key, "--json")
    assert after.json["apiUrl"] == served.url
    assert after.json["source"] == "flag"
    between = cli("auth", "--json", "keys", "--api-url", served.url, "list", "--api-key", ada.key)
    assert [k["id"] for k in between.json["data"]] == [ada.key_id]
    before = cli(
        "--json", "--api-url", served.url, "auth", "keys", "get", ada.key_id, "--api-key", ada.key
    )
    assert before.json["id"] == ada.key_id


def test_the_last_api_key_given_wins(
    served: ServedApp, ada: Person, secret_registry: SecretRegistry
) -> None:
    later, later_id = mint(served, secret_registry, name="later")
    cli = CommandLine({"RUNTOOLS_API_URL": served.url})
    status = cli("--api-key", ada.key, "auth", "status", "--json", "--api-key", later).json
    assert status["credential"]["id"] == later_id
