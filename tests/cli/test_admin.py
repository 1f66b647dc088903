"""``runtools admin …`` driven as an operator would, against a real database.

The commands run in-process (``support.cli``) on the test's own home or
PostgreSQL schema, and the service they prepare is the real app on a
socket; the first test runs both as processes, as a new deployment would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from runtools.server.settings import Settings
from runtools.server.store.database import Database
from runtools.server.store.models import User
from support.cli import CommandLine
from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp, serve


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """The service's settings: the same home and database the commands work on."""
    return Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)


@pytest.fixture
def admin(settings: Settings) -> CommandLine:
    env = {"RUNTOOLS_HOME": str(settings.home)}
    if settings.database_url:
        env["RUNTOOLS_DATABASE_URL"] = settings.database_url
    return CommandLine(env)


@pytest.fixture
def served(settings: Settings, secret_registry: SecretRegistry) -> Iterator[ServedApp]:
    with serve(settings, secret_registry) as app:
        yield app


def test_bootstrap_from_nothing_to_a_working_key(
    admin: CommandLine,
    server_env: dict[str, str],
    live_server: LiveServer,
    secret_registry: SecretRegistry,
) -> None:
    """The smoke test: the key is minted by ``python -m runtools admin`` in a process of
    its own and used on ``runtools serve``, as on a new deployment."""
    org = admin("admin", "create-org", "acme", "--json").json
    assert org["name"] == "acme"
    assert org["id"].startswith("org_")
    user = admin(
        "admin", "create-user", "Ada@Example.com", "--org", "acme", "--role", "admin", "--json"
    ).json
    assert user["email"] == "ada@example.com"
    assert user["role"] == "admin"
    assert user["created"]
    result = runtools(
        "admin", "create-key", "--org", "acme", "--user", "ada@example.com", "--name", "ci",
        "--scopes", "sandbox:read,sandbox:exec", "--expires-in", "30d", "--json",
        env=server_env,
    )  # fmt: skip
    created = json.loads(result.stdout)
    key = secret_registry.add(created["key"])
    assert key.startswith("rt_live_")
    assert created["id"].startswith("key_")
    assert created["scopes"] == ["sandbox:exec", "sandbox:read"]
    assert created["expiresAt"]

    live_server.start()
    me = httpx.get(f"{live_server.url}/v1/me", headers={"X-API-Key": key}).json()["data"]
    assert me["credential"]["id"] == created["id"]
    assert me["user"]["email"] == "ada@example.com"


def test_human_output_prints_the_key_alone_on_stdout(
    admin: CommandLine, secret_registry: SecretRegistry
) -> None:
    admin("admin", "create-org", "acme")
    admin("admin", "create-user", "ada@example.com", "--org", "acme")
    result = admin(
        "admin", "create-key", "--org", "acme", "--user", "ada@example.com", "--name", "ci",
        "--test",
    )  # fmt: skip
    key = secret_registry.add(result.stdout.strip())
    assert key.startswith("rt_test_")
    assert "\n" not in key
    assert "will not be shown again" in result.stderr


def test_missing_and_duplicate_names_fail_clearly(admin: CommandLine) -> None:
    admin("admin", "create-org", "acme")
    cases = [
        (("admin", "create-org", "acme"), "already exists"),
        (("admin", "create-user", "ada@example.com", "--org", "nope"), "No organization named"),
        (("admin", "create-user", "not-an-email", "--org", "acme"), "Invalid email"),
        (
            ("admin", "create-key", "--org", "acme", "--user", "ghost@example.com", "--name", "x"),
            "No user with email",
        ),
        (
            ("admin", "create-key", "--org", "nope", "--user", "a@example.com", "--name", "x"),
            "No organization named",
        ),
    ]
    for args, message in cases:
        result = admin(*args, check=False)
        assert result.exit_code == 1, args
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        as_json = admin(*args, "--json", check=False)
        assert as_json.exit_code == 1
        error = as_json.json["error"]
        assert message in error["message"]
        assert error["code"] == "refused"
        assert error["requestId"] is None  # no server asked

    admin("admin", "create-user", "ada@example.com", "--org", "acme")
    again = admin("admin", "create-user", "ada@example.com", "--org", "acme", check=False)
    assert again.exit_code == 1
    assert "already a member" in again.stderr


def test_bad_key_options_fail_and_mint_nothing(admin: CommandLine) -> None:
    admin("admin", "create-org", "acme")
    admin("admin", "create-user", "bob@example.com", "--org", "acme")
    for extra, message in [
        (("--scopes", "sandbox:destroy"), "Unknown scope"),
        (("--expires-in", "30m"), "Invalid duration"),
        (("--scopes", "org:members"), "cannot hold scope"),
    ]:
        result = admin(
            "admin", "create-key", "--org", "acme", "--user", "bob@example.com", "--name", "x",
            *extra, check=False,
        )  # fmt: skip
        assert result.exit_code == 1, extra
        assert message in result.stderr
        assert "rt_live_" not in result.stdout


def test_a_user_can_join_a_second_org(admin: CommandLine) -> None:
    admin("admin", "create-org", "acme")
    admin("admin", "create-org", "globex")
    admin("admin", "create-user", "ada@example.com", "--org", "acme")
    second = admin(
        "admin", "create-user", "ada@example.com", "--org", "globex", "--role", "admin", "--json"
    ).json
    assert second["created"] is False
    assert second["org"]["name"] == "globex"


def test_password_from_stdin_is_stored_hashed(admin: CommandLine, settings: Settings) -> None:
    admin("admin", "create-org", "acme")
    password = "correct horse battery staple"
    admin(
        "admin", "create-user", "ada@example.com", "--org", "acme", "--password-stdin",
        stdin=password + "\n",
    )  # fmt: skip
    database = Database(settings)
    with database.session() as session:
        stored = session.scalar(select(User.password_hash))
    database.dispose()
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert password not in stored
    short = admin(
        "admin", "create-user", "bob@example.com", "--org", "acme", "--password-stdin",
        stdin="short\n", check=False,
    )  # fmt: skip
    assert short.exit_code == 1
    assert "12-1024 characters" in short.stderr
    empty = admin(
        "admin", "create-user", "bob@example.com", "--org", "acme", "--password-stdin",
        stdin="", check=False,
    )  # fmt: skip
    assert empty.exit_code == 2
    assert "stdin was empty" in empty.stderr  # a usage error


def _kids(served: ServedApp) -> set[str]:
    return {k["kid"] for k in httpx.get(f"{served.url}/.well-known/jwks.json").json()["keys"]}


def test_rotating_the_signing_key_publishes_both_keys(
    admin: CommandLine, settings: Settings, secret_registry: SecretRegistry
) -> None:
    with serve(settings, secret_registry) as served:
        before = _kids(served)
    rotated = admin("admin", "rotate-signing-key", "--json").json
    assert rotated["kid"] not in before
    with serve(settings, secret_registry) as restarted:  # the service started again
        assert _kids(restarted) == before | {rotated["kid"]}


def test_a_user_without_a_password_is_given_one_once(
    admin: CommandLine, served: ServedApp, secret_registry: SecretRegistry
) -> None:
    admin("admin", "create-org", "acme")
    admin("admin", "create-user", "ada@example.com", "--org", "acme")
    password = "correct horse battery staple"
    given = admin(
        "admin", "set-password", "ada@example.com", "--password-stdin", stdin=password + "\n"
    )
    assert "can now sign in" in given.stdout
    signed_in = httpx.post(
        f"{served.url}/v1/auth/login", json={"email": "ada@example.com", "password": password}
    )
    assert signed_in.status_code == 200
    secret_registry.add(signed_in.json()["data"]["accessToken"])
    secret_registry.add(signed_in.json()["data"]["refreshToken"])
    again = admin(
        "admin", "set-password", "ada@example.com", "--password-stdin",
        stdin="another long password\n", check=False,
    )  # fmt: skip
    assert again.exit_code == 1
    assert "already has a password" in again.stderr
    unsaid = admin("admin", "set-password", "ada@example.com", check=False)
    assert unsaid.exit_code == 2
