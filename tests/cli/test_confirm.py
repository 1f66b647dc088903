"""Commands that cannot be undone ask first on a terminal; scripts and --yes are never asked."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.cli import CommandLine
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp

from .conftest import Person, mint, sign_in

QUESTION = "[y/N]"


def on_a_terminal(args: list[str], env: dict[str, str], answer: str | None) -> tuple[int, str, str]:
    """Run ``runtools ARGS`` with a terminal on stdin; answer the question if one comes."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "runtools", *args],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(terminal)
    try:
        assert process.stderr is not None
        shown = b""
        if answer is not None:
            deadline = time.monotonic() + 60
            while QUESTION.encode() not in shown and time.monotonic() < deadline:
                chunk = os.read(process.stderr.fileno(), 4096)
                if not chunk:
                    break
                shown += chunk
            assert QUESTION.encode() in shown, shown
            os.write(controller, answer.encode() + b"\n")
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return process.returncode, stdout.decode(), (shown + stderr).decode()


@pytest.fixture
def env(served: ServedApp, ada: Person, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    return {
        **clean,
        "RUNTOOLS_API_URL": served.url,
        "RUNTOOLS_API_KEY": ada.key,
        "RUNTOOLS_CONFIG_DIR": str(tmp_path / "cli"),
    }


def status_of(served: ServedApp, ada: Person, key_id: str) -> str:
    response = httpx.get(f"{served.url}/v1/api-keys/{key_id}", headers={"X-API-Key": ada.key})
    status: str = response.json()["data"]["status"]
    return status


def test_revoking_on_a_terminal_asks_and_no_changes_nothing(
    served: ServedApp, ada: Person, env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    _, key_id = mint(served, secret_registry, name="ci")
    code, stdout, stderr = on_a_terminal(["auth", "keys", "revoke", key_id], env, "n")
    assert f"Revoke key {key_id}?" in stderr
    assert stdout == ""
    assert code == 1
    assert "cancelled; nothing was changed" in stderr
    assert status_of(served, ada, key_id) == "active"

    code, stdout, stderr = on_a_terminal(["auth", "keys", "revoke", key_id], env, "y")
    assert code == 0
    assert f"Revoked key ci ({key_id})" in stdout
    assert status_of(served, ada, key_id) == "revoked"


def test_yes_skips_the_question_on_a_terminal(
    served: ServedApp, ada: Person, env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    _, key_id = mint(served, secret_registry, name="ci")
    code, stdout, stderr = on_a_terminal(["auth", "keys", "revoke", key_id, "--yes"], env, None)
    assert code == 0
    assert QUESTION not in stderr
    assert "Revoked key" in stdout
    assert status_of(served, ada, key_id) == "revoked"


def test_scripts_are_never_asked(
    cli: CommandLine,
    served: ServedApp,
    ada: Person,
    tmp_path: Path,
    secret_registry: SecretRegistry,
) -> None:
    # Not a terminal on stdin (a pipe, a file, CI): the command runs as if --yes were given.
    _, revoked = mint(served, secret_registry, name="revoked")
    _, rotated = mint(served, secret_registry, name="rotated")
    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    ran = cli("auth", "keys", "revoke", revoked, "--json", env=as_ada)
    assert ran.json["status"] == "revoked"
    assert QUESTION not in ran.stderr
    new = cli("auth", "keys", "rotate", rotated, "--json", env=as_ada).json
    secret_registry.add(new["key"])
    assert new["rotatedFromId"] == rotated
    assert status_of(served, ada, rotated) == "revoked"
    sign_in(served.url, tmp_path / "cli", secret_registry)
    laptop = sign_in(served.url, tmp_path / "laptop", secret_registry)
    ended = cli("auth", "sessions", "revoke", laptop.session_id or "", "--json")
    assert ended.json == {"revoked": 1}
    assert QUESTION not in ended.stderr


def test_rotating_with_a_grace_period_is_not_asked_on_a_terminal(
    served: ServedApp, ada: Person, env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    _, key_id = mint(served, secret_registry, name="ci")
    code, stdout, stderr = on_a_terminal(
        ["auth", "keys", "rotate", key_id, "--grace-period", "1h"], env, None
    )
    assert code == 0
    assert QUESTION not in stderr
    secret_registry.add(stdout.strip())
    assert status_of(served, ada, key_id) == "expiring"
