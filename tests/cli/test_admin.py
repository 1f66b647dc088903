"""``runtools admin …`` driven as an operator would, against a real database."""

from __future__ import annotations

import json

from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry


def test_bootstrap_from_nothing_to_a_working_key(
    server_env: dict[str, str], live_server: LiveServer, secret_registry: SecretRegistry
) -> None:
    org = json.loads(runtools("admin", "create-org", "acme", "--json", env=server_env).stdout)
    assert org["name"] == "acme"
    assert org["id"].startswith("org_")
    user = json.loads(
        runtools(
            "admin",
            "create-user",
            "Ada@Example.com",
            "--org",
            "acme",
            "--role",
            "admin",
            "--json",
            env=server_env,
        ).stdout
    )
    assert user["email"] == "ada@example.com"
    assert user["role"] == "admin"
    assert user["created"]
    result = runtools(
        "admin",
        "create-key",
        "--org",
        "acme",
        "--user",
        "ada@example.com",
        "--name",
        "ci",
        "--scopes",
        "sandbox:read,sandbox:exec",
        "--expires-in",
        "30d",
        "--json",
        env=server_env,
    )
    created = json.loads(result.stdout)
    key = secret_registry.add(created["key"])
    assert key.startswith("rt_live_")
    assert created["id"].startswith("key_")
    assert created["scopes"] == ["sandbox:exec", "sandbox:read"]
    assert created["expiresAt"]

    import httpx

    live_server.start()
    me = httpx.get(f"{live_server.url}/v1/me", headers={"X-API-Key": key}).json()["data"]
    assert me["credential"]["id"] == created["id"]
    assert me["user"]["email"] == "ada@example.com"


def test_human_output_prints_the_key_alone_on_stdout(
    server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    runtools("admin", "create-org", "acme", env=server_env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", env=server_env)
    result = runtools(
        "admin",
        "create-key",
        "--org",
        "acme",
        "--user",
        "ada@example.com",
        "--name",
        "ci",
        "--test",
        env=server_env,
    )
    key = secret_registry.add(result.stdout.strip())
    assert key.startswith("rt_test_")
    assert "\n" not in key
    assert "will not be shown again" in result.stderr


def test_missing_and_duplicate_names_fail_clearly(server_env: dict[str, str]) -> None:
    runtools("admin", "create-org", "acme", env=server_env)
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
        result = runtools(*args, env=server_env, check=False)
        assert result.returncode == 1, args
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        as_json = runtools(*args, "--json", env=server_env, check=False)
        assert as_json.returncode == 1
        error = json.loads(as_json.stdout)["error"]
        assert message in error["message"]
        assert error["code"] == "refused"
        assert error["requestId"] is None  # no server asked

    runtools("admin", "create-user", "ada@example.com", "--org", "acme", env=server_env)
    again = runtools(
        "admin", "create-user", "ada@example.com", "--org", "acme", env=server_env, check=False
    )
    assert again.returncode == 1
    assert "already a member" in again.stderr


def test_bad_key_options_fail_and_mint_nothing(server_env: dict[str, str]) -> None:
    runtools("admin", "create-org", "acme", env=server_env)
    runtools("admin", "create-user", "bob@example.com", "--org", "acme", env=server_env)
    for extra, message in [
        (("--scopes", "sandbox:destroy"), "Unknown scope"),
        (("--expires-in", "30m"), "Invalid duration"),
        (("--scopes", "org:members"), "cannot hold scope"),
    ]:
        result = runtools(
            "admin",
            "create-key",
            "--org",
            "acme",
            "--user",
            "bob@example.com",
            "--name",
            "x",
            *extra,
            env=server_env,
            check=False,
        )
        assert result.returncode == 1, extra
        assert message in result.stderr
        assert "rt_live_" not in result.stdout


def test_a_user_can_join_a_second_org(server_env: dict[str, str]) -> None:
    runtools("admin", "create-org", "acme", env=server_env)
    runtools("admin", "create-org", "globex", env=server_env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", env=server_env)
    second = json.loads(
        runtools(
            "admin",
            "create-user",
            "ada@example.com",
            "--org",
            "globex",
            "--role",
            "admin",
            "--json",
            env=server_env,
        ).stdout
    )
    assert second["created"] is False
    assert second["org"]["name"] == "globex"


def test_password_from_stdin_is_stored_hashed(server_env: dict[str, str]) -> None:
    runtools("admin", "create-org", "acme", env=server_env)
    password = "correct horse battery staple"
    runtools(
        "admin",
        "create-user",
        "ada@example.com",
        "--org",
        "acme",
        "--password-stdin",
        env=server_env,
        stdin=password + "\n",
    )
    from runtools.server.settings import Settings
    from runtools.server.store.database import Database

    settings = Settings(
        home=server_env["RUNTOOLS_HOME"], database_url=server_env.get("RUNTOOLS_DATABASE_URL")
    )
    database = Database(settings)
    from sqlalchemy import select

    from runtools.server.store.models import User

    with database.session() as session:
        stored = session.scalar(select(User.password_hash))
    database.dispose()
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert password not in stored
    short = runtools(
        "admin",
        "create-user",
        "bob@example.com",
        "--org",
        "acme",
        "--password-stdin",
        env=server_env,
        stdin="short\n",
        check=False,
    )
    assert short.returncode == 1
    assert "12-1024 characters" in short.stderr
    empty = runtools(
        "admin", "create-user", "bob@example.com", "--org", "acme", "--password-stdin",
        env=server_env, stdin="", check=False,
    )  # fmt: skip
    assert empty.returncode == 2
    assert "stdin was empty" in empty.stderr  # a usage error


def test_rotating_the_signing_key_publishes_both_keys(
    server_env: dict[str, str], live_server: LiveServer
) -> None:
    import httpx

    live_server.start()
    before = {
        k["kid"] for k in httpx.get(f"{live_server.url}/.well-known/jwks.json").json()["keys"]
    }
    rotated = json.loads(runtools("admin", "rotate-signing-key", "--json", env=server_env).stdout)
    assert rotated["kid"] not in before
    live_server.stop()
    live_server.start()
    after = {k["kid"] for k in httpx.get(f"{live_server.url}/.well-known/jwks.json").json()["keys"]}
    assert after == before | {rotated["kid"]}


def test_a_user_without_a_password_is_given_one_once(
    server_env: dict[str, str], live_server: LiveServer, secret_registry: SecretRegistry
) -> None:
    import httpx

    runtools("admin", "create-org", "acme", env=server_env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", env=server_env)
    password = "correct horse battery staple"
    given = runtools(
        "admin", "set-password", "ada@example.com", "--password-stdin",
        env=server_env, stdin=password + "\n",
    )  # fmt: skip
    assert "can now sign in" in given.stdout
    live_server.start()
    signed_in = httpx.post(
        f"{live_server.url}/v1/auth/login", json={"email": "ada@example.com", "password": password}
    )
    assert signed_in.status_code == 200
    secret_registry.add(signed_in.json()["data"]["accessToken"])
    secret_registry.add(signed_in.json()["data"]["refreshToken"])
    again = runtools(
        "admin", "set-password", "ada@example.com", "--password-stdin",
        env=server_env, stdin="another long password\n", check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert "already has a password" in again.stderr
    unsaid = runtools("admin", "set-password", "ada@example.com", env=server_env, check=False)
    assert unsaid.returncode == 2
