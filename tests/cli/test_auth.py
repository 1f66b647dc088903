"""``runtools login``, ``auth …`` and ``logout`` driven as a user would, against a live server.

The commands run in-process (``support.cli``) against the real app on a
socket; ``login`` waits for its code to be approved as it would on a
terminal, while a watcher approves it from another signed-in terminal.
"""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtools import LoginStore, RunTools, StoredLogin
from runtools.server import operator
from support.cli import CommandLine
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp

from .conftest import PASSWORD, Person, mint, sign_in


@pytest.fixture
def acme(served: ServedApp) -> ServedApp:
    """The service with acme and its admin ada, who has a password and no key yet."""
    operator.create_org(served.runtime, "acme")
    operator.create_user(
        served.runtime, "ada@example.com", org_name="acme", role="admin", password=PASSWORD,
        display_name=None,
    )  # fmt: skip
    return served


def terminal(served: ServedApp, config: Path) -> CommandLine:
    """``runtools`` on a terminal of its own (its own config directory)."""
    return CommandLine({"RUNTOOLS_API_URL": served.url, "RUNTOOLS_CONFIG_DIR": str(config)})


def device_login(
    cli: CommandLine, served: ServedApp, approver: StoredLogin, *options: str, status: int = 0
) -> dict[str, Any]:
    """``runtools login --json``, approved from the ``approver``'s signed-in terminal."""

    def approve(stderr: Callable[[], str]) -> None:
        code = wait_for_code(stderr)
        with RunTools(access_token=approver.access_token, base_url=served.url) as rt:
            rt.auth.approve_device(code)

    ran = cli("login", "--no-browser", "--json", *options, watch=approve, check=False)
    assert ran.exit_code == status, ran.stderr
    result: dict[str, Any] = ran.json
    result["_stderr"] = ran.stderr
    return result


def test_auth_approve_approves_or_denies_a_waiting_sign_in(
    acme: ServedApp, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    sign_in(acme.url, tmp_path / "laptop", secret_registry)
    approver = terminal(acme, tmp_path / "laptop")
    for action, verb, answer in (("approve", "Approved", 200), ("deny", "Denied", 400)):
        grant = httpx.post(f"{acme.url}/v1/auth/device/code", data={"client_id": "runtools-cli"})
        code = grant.json()["user_code"]
        secret_registry.add(grant.json()["device_code"])
        decided = approver("auth", "approve", code, *(["--deny"] if action == "deny" else []))
        assert f"{verb} sign-in {code} (runtools-cli" in decided.stdout
        polled = httpx.post(
            f"{acme.url}/v1/auth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": "runtools-cli",
                "device_code": grant.json()["device_code"],
            },
        )
        assert polled.status_code == answer, polled.text
        if answer == 200:
            secret_registry.add(polled.json()["access_token"])
            secret_registry.add(polled.json()["refresh_token"])
        else:
            assert polled.json()["error"] == "access_denied"


def test_login_status_keys_and_logout(
    acme: ServedApp, cli: CommandLine, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    approver = sign_in(acme.url, tmp_path / "laptop", secret_registry)

    login = device_login(cli, acme, approver)
    assert login["user"]["email"] == "ada@example.com"
    assert login["organization"]["name"] == "acme"
    store = LoginStore(tmp_path / "cli")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    saved = store.get(acme.url)
    assert saved is not None
    assert saved.type == "session"
    secret_registry.add(saved.access_token or "")
    secret_registry.add(saved.refresh_token or "")
    assert saved.refresh_token not in login["_stderr"]

    status = cli("auth", "status", "--json").json
    assert status["source"] == "stored"
    assert status["credential"]["type"] == "session"
    assert status["user"]["email"] == "ada@example.com"
    assert status["apiUrl"] == acme.url
    human = cli("auth", "status").stdout
    assert "session from the stored login" in human
    assert "ada@example.com (admin)" in human

    sessions = cli("auth", "sessions", "list", "--json").json
    assert {s["clientName"] for s in sessions["data"]} == {"laptop", "runtools-cli"}

    created = cli("auth", "keys", "create", "ci-production", "--scopes", "*")
    key = secret_registry.add(created.stdout.strip())
    assert key.startswith("rt_live_")
    assert "\n" not in key
    assert "only time the key is shown" in created.stderr
    assert key not in created.stderr
    assert "in organization acme (org_" in created.stderr

    narrow = cli(
        "auth", "keys", "create", "ci", "--scope", "sandbox:read", "--scope", "sandbox:exec",
        "--expires-in", "30d", "--test", "--rate-limit", "10", "--json",
    ).json  # fmt: skip
    secret_registry.add(narrow["key"])
    assert narrow["scopes"] == ["sandbox:exec", "sandbox:read"]
    assert narrow["isTest"]
    assert narrow["rateLimit"] == 10

    listed = cli("auth", "keys", "list", "--json").json["data"]
    assert [k["name"] for k in listed] == ["ci", "ci-production"]
    assert all("key" not in k for k in listed)
    assert {k["orgName"] for k in listed} == {"acme"}
    listing = cli("auth", "keys", "list")
    table = listing.stdout
    assert "ci-production" in table
    assert "API keys of organization acme (org_" in listing.stderr
    assert narrow["keyPrefix"] in table

    got = cli("auth", "keys", "get", narrow["id"], "--json").json
    assert got["name"] == "ci"
    updated = cli("auth", "keys", "update", narrow["id"], "--name", "ci-2", "--json").json
    assert updated["name"] == "ci-2"
    assert updated["rateLimit"] == 10
    shown = cli("auth", "keys", "update", narrow["id"], "--plan-rate-limit").stdout
    assert re.search(r"Rate limit:\s+the plan's default", shown), shown
    both = cli(
        "auth", "keys", "update", narrow["id"], "--rate-limit", "5", "--plan-rate-limit",
        check=False,
    )  # fmt: skip
    assert both.exit_code == 2
    assert "contradict" in both.stderr
    rotated = cli(
        "auth", "keys", "rotate", narrow["id"], "--name", "ci-3", "--grace-period", "1h", "--json"
    ).json
    secret_registry.add(rotated["key"])
    assert rotated["rotatedFromId"] == narrow["id"]
    assert rotated["name"] == "ci-3"
    revoked = cli("auth", "keys", "revoke", rotated["id"], "--json").json
    assert revoked["status"] == "revoked"

    out = cli("logout")
    assert "Signed out" in out.stdout
    assert store.get(acme.url) is None
    after = cli("auth", "status", check=False)
    assert after.exit_code == 4
    assert "runtools login" in after.stderr
    # The session ended on the server too: its refresh token no longer works.
    refused = httpx.post(f"{acme.url}/v1/auth/refresh", json={"refreshToken": saved.refresh_token})
    assert refused.status_code == 401


def test_login_into_an_org_and_switch_between_orgs(
    acme: ServedApp, cli: CommandLine, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    operator.create_org(acme.runtime, "globex")
    operator.create_user(
        acme.runtime, "ada@example.com", org_name="globex", role="member", password=None,
        display_name=None,
    )  # fmt: skip
    approver = sign_in(acme.url, tmp_path / "laptop", secret_registry)  # in acme
    approver_cli = terminal(acme, tmp_path / "laptop")
    store = LoginStore(tmp_path / "cli")

    login = device_login(cli, acme, approver, "--org", "globex")
    first = store.get(acme.url)
    assert first is not None
    assert first.org_name == "globex"
    secret_registry.add(first.access_token or "")
    secret_registry.add(first.refresh_token or "")
    assert login["organization"]["name"] == "globex"
    assert login["user"]["role"] == "member"

    switched = cli("auth", "switch-org", "acme", "--json").json
    assert switched["organization"]["name"] == "acme"
    assert switched["user"]["role"] == "admin"
    second = store.get(acme.url)
    assert second is not None
    assert second.org_name == "acme"
    assert second.session_id != first.session_id
    secret_registry.add(second.access_token or "")
    secret_registry.add(second.refresh_token or "")
    ended = httpx.post(f"{acme.url}/v1/auth/refresh", json={"refreshToken": first.refresh_token})
    assert ended.status_code == 401  # the globex session ended with the switch
    status = cli("auth", "status", "--json").json
    assert status["organization"]["name"] == "acme"

    refused = cli("auth", "switch-org", "initech", check=False)
    assert refused.exit_code == 5
    assert "not a member of 'initech'" in refused.stderr
    assert store.get(acme.url) == second  # nothing changed
    with_key = cli(
        "auth", "switch-org", "globex", env={"RUNTOOLS_API_KEY": "rt_live_x"}, check=False
    )
    assert with_key.exit_code == 2
    assert "API key is in effect" in with_key.stderr

    # A login into an org you are not in fails, stores nothing, and leaves no session behind.
    before = approver_cli("auth", "sessions", "list", "--json").json
    failed = device_login(cli, acme, approver, "--org", "initech", status=5)
    assert "not a member of 'initech'" in failed["error"]["message"]
    assert store.get(acme.url) == second
    after = approver_cli("auth", "sessions", "list", "--json").json
    assert {s["id"] for s in after["data"]} == {s["id"] for s in before["data"]}


def test_precedence_flag_then_environment_then_stored_login(
    acme: ServedApp, cli: CommandLine, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    stored_key, env_key, flag_key = (
        mint(acme, secret_registry, name=name)[0] for name in ("stored", "env", "flag")
    )
    set_key = cli("auth", "set-key", stdin=stored_key + "\n")
    assert "Stored key stored" in set_key.stdout
    assert stored_key not in set_key.stdout
    assert stat.S_IMODE(LoginStore(tmp_path / "cli").path.stat().st_mode) == 0o600

    def status(*args: str, **extra: str) -> dict[str, Any]:
        result = cli(*args, "auth", "status", "--json", env=extra)
        assert stored_key not in result.stderr
        assert env_key not in result.stderr
        parsed: dict[str, Any] = result.json
        return parsed

    assert (status()["source"], status()["credential"]["name"]) == ("stored", "stored")
    from_env = status(RUNTOOLS_API_KEY=env_key)
    assert (from_env["source"], from_env["credential"]["name"]) == ("environment", "env")
    from_flag = status("--api-key", flag_key, RUNTOOLS_API_KEY=env_key)
    assert (from_flag["source"], from_flag["credential"]["name"]) == ("flag", "flag")
    human = cli("auth", "status", env={"RUNTOOLS_API_KEY": env_key}).stdout
    assert "RUNTOOLS_API_KEY environment variable" in human
    assert "Scopes:" in human


def test_errors_are_one_line_with_a_request_id_and_an_exit_code_by_class(
    acme: ServedApp, cli: CommandLine, secret_registry: SecretRegistry
) -> None:
    key, _ = mint(acme, secret_registry, name="narrow", scopes=("sandbox:read",))
    admin_key, _ = mint(acme, secret_registry, name="full")
    cases = [
        (("auth", "status"), {}, 4, "not signed in"),
        (("--api-key", "rt_live_" + "x" * 38, "auth", "status"), {}, 4, "Invalid or missing"),
        (("--api-key", key, "auth", "keys", "list"), {}, 5, "requires scope *"),
        (("--api-key", admin_key, "auth", "sessions", "list"), {}, 5, "signed-in session"),
        (("--api-key", admin_key, "auth", "keys", "get", "key_nope"), {}, 6, "No API key"),
        (
            ("--api-key", admin_key, "auth", "keys", "create", "x", "--scopes", "nope:nope"),
            {},
            1,
            "nope:nope",
        ),
        (("auth", "keys", "create"), {}, 2, "Missing argument"),
        (
            ("--api-key", admin_key, "auth", "keys", "create", "ci", "--scopes", ""),
            {},
            2,
            "empty --scopes",
        ),
        (
            ("--api-key", admin_key, "auth", "status"),
            {"RUNTOOLS_API_URL": "http://127.0.0.1:1"},
            3,
            "cannot reach",
        ),
    ]
    for args, extra, code, message in cases:
        result = cli(*args, env=extra, check=False)
        assert result.exit_code == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        if code in (1, 4, 5, 6) and "not signed in" not in message:
            assert re.search(r"^error: .*\(request req_\w+\)$", result.stderr.strip()), (
                result.stderr
            )
        if code != 2:
            as_json = cli(*args, "--json", env=extra, check=False)
            assert as_json.exit_code == code
            assert message in as_json.json["error"]["message"]


def test_auth_token_prints_the_stored_sessions_token_refreshing_it_near_expiry(
    cli: CommandLine,
    served: ServedApp,
    ada: Person,
    tmp_path: Path,
    secret_registry: SecretRegistry,
) -> None:
    config = tmp_path / "cli"
    login = sign_in(served.url, config, secret_registry)
    printed = cli("auth", "token")
    assert printed.stdout == f"{login.access_token}\n"
    assert printed.stderr == ""
    me = httpx.get(
        f"{served.url}/v1/me", headers={"Authorization": f"Bearer {printed.stdout.strip()}"}
    )
    assert me.status_code == 200
    assert me.json()["data"]["credential"]["type"] == "session"

    # Half a minute left: the token handed out is a fresh one, and the store holds it.
    store = LoginStore(config)
    store.save(replace(login, expires_at=datetime.now(UTC) + timedelta(seconds=30)))
    fresh_run = cli("auth", "token", "--json")
    fresh = fresh_run.json
    secret_registry.add(fresh["accessToken"])
    assert fresh["accessToken"] != login.access_token
    assert fresh["tokenType"] == "Bearer"
    saved = store.get(served.url)
    assert saved is not None
    assert saved.access_token == fresh["accessToken"]
    secret_registry.add(saved.refresh_token or "")
    assert datetime.fromisoformat(fresh["expiresAt"]) > datetime.now(UTC) + timedelta(minutes=4)
    assert (
        httpx.get(
            f"{served.url}/v1/me", headers={"Authorization": f"Bearer {fresh['accessToken']}"}
        ).status_code
        == 200
    )

    # The session's token whatever RUNTOOLS_API_KEY says, with a note that the key is in effect.
    with_key = cli("auth", "token", env={"RUNTOOLS_API_KEY": ada.key})
    assert with_key.stdout.strip() == fresh["accessToken"]
    assert "RUNTOOLS_API_KEY is in effect" in with_key.stderr
    assert ada.key not in with_key.stderr


def test_auth_token_without_a_stored_session_says_why(
    cli: CommandLine, served: ServedApp, ada: Person, tmp_path: Path
) -> None:
    nothing = cli("auth", "token", check=False)
    assert nothing.exit_code == 4
    assert "not signed in" in nothing.stderr
    assert nothing.stdout == ""
    as_json = cli("auth", "token", "--json", check=False)
    assert as_json.exit_code == 4
    assert as_json.json["error"]["code"] == "unauthorized"
    LoginStore(tmp_path / "cli").save(
        StoredLogin(api_url=served.url, type="api_key", api_key=ada.key)
    )
    a_key = cli("auth", "token", check=False)
    assert a_key.exit_code == 2
    assert "is an API key" in a_key.stderr
    assert ada.key not in a_key.stdout


def test_auth_token_of_an_ended_session_fails_once_refreshing_is_refused(
    cli: CommandLine,
    served: ServedApp,
    ada: Person,
    tmp_path: Path,
    secret_registry: SecretRegistry,
) -> None:
    config = tmp_path / "cli"
    login = sign_in(served.url, config, secret_registry)
    LoginStore(config).save(replace(login, expires_at=datetime.now(UTC)))
    httpx.post(
        f"{served.url}/v1/auth/logout", headers={"Authorization": f"Bearer {login.access_token}"}
    )
    ended = cli("auth", "token", check=False)
    assert ended.exit_code == 4
    assert "has ended" in ended.stderr
    assert ended.stdout == ""


def test_status_says_which_credential_wins_and_what_it_hides(
    cli: CommandLine,
    served: ServedApp,
    ada: Person,
    tmp_path: Path,
    secret_registry: SecretRegistry,
) -> None:
    sign_in(served.url, tmp_path / "cli", secret_registry)
    stored = cli("auth", "status", "--json").json
    assert stored["source"] == "stored"
    assert stored["overrides"] == []
    human = cli("auth", "status").stdout
    assert re.search(r"Access token expires:\s+\d{4}-\d\d-\d\d .*refreshed automatically", human)
    assert "Not used" not in human
    assert re.search(r"\nExpires:", human) is None

    from_env = cli("auth", "status", "--json", env={"RUNTOOLS_API_KEY": ada.key}).json
    assert from_env["source"] == "environment"
    assert from_env["overrides"] == ["stored"]
    assert "RUNTOOLS_API_KEY is set" in from_env["reason"]
    human = cli("auth", "status", env={"RUNTOOLS_API_KEY": ada.key}).stdout
    assert re.search(r"Not used:\s+the stored session login in .*RUNTOOLS_API_KEY wins", human)
    assert re.search(r"Key expires:\s+never", human)

    from_flag = cli(
        "auth", "status", "--api-key", ada.key, "--json", env={"RUNTOOLS_API_KEY": ada.key}
    ).json
    assert from_flag["source"] == "flag"
    assert from_flag["overrides"] == ["environment", "stored"]


def test_storing_a_login_that_a_key_overrides_warns(
    cli: CommandLine, served: ServedApp, ada: Person, secret_registry: SecretRegistry
) -> None:
    other, _ = mint(served, secret_registry)
    stored = cli("auth", "set-key", "--json", stdin=other, env={"RUNTOOLS_API_KEY": ada.key})
    assert stored.json["inEffect"] is False
    assert stored.json["overriddenBy"] == "RUNTOOLS_API_KEY"
    assert "warning: RUNTOOLS_API_KEY is set" in stored.stderr
    assert "unset" in stored.stderr
    plain = cli("auth", "set-key", "--json", stdin=other)
    assert plain.json["inEffect"] is True
    assert "warning" not in plain.stderr


def test_login_while_an_environment_key_wins_warns_before_waiting(
    cli: CommandLine,
    served: ServedApp,
    ada: Person,
    tmp_path: Path,
    secret_registry: SecretRegistry,
) -> None:
    approver = sign_in(served.url, tmp_path / "laptop", secret_registry)

    def approve(stderr: Callable[[], str]) -> None:
        code = wait_for_code(stderr)
        assert "warning: RUNTOOLS_API_KEY is set" in stderr()  # said before the wait
        with RunTools(access_token=approver.access_token, base_url=served.url) as rt:
            rt.auth.approve_device(code)

    login = cli("login", "--no-browser", "--json", env={"RUNTOOLS_API_KEY": ada.key}, watch=approve)
    assert login.json["inEffect"] is False
    assert login.json["overriddenBy"] == "RUNTOOLS_API_KEY"
    saved = LoginStore(tmp_path / "cli").get(served.url)
    assert saved is not None
    assert saved.type == "session"
    secret_registry.add(saved.access_token or "")
    secret_registry.add(saved.refresh_token or "")


def wait_for_code(stderr: Callable[[], str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"code: ([A-Z]{4}-[A-Z]{4})", stderr())
        if found:
            return found.group(1)
        time.sleep(0.02)
    raise AssertionError(f"no sign-in code shown: {stderr()}")
