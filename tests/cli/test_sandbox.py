"""``runtools sandbox …`` driven as a user would, against a live server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry

pytestmark = pytest.mark.slow


@pytest.fixture
def user_env(
    live_server: LiveServer, server_env: dict[str, str], secret_registry: SecretRegistry
) -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    runtools("admin", "create-org", "acme", env=server_env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", env=server_env)
    out = runtools(
        "admin", "create-key", "--org", "acme", "--user", "ada@example.com", "--name", "cli",
        "--json", env=server_env,
    )  # fmt: skip
    key = secret_registry.add(json.loads(out.stdout)["key"])
    live_server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    env["RUNTOOLS_API_KEY"] = key
    env["RUNTOOLS_API_URL"] = live_server.url
    return env


def test_create_exec_files_and_destroy_by_name(user_env: dict[str, str], tmp_path: Path) -> None:
    created = json.loads(
        runtools(
            "sandbox", "create", "--name", "my-env", "--tag", "ci", "--json", env=user_env
        ).stdout
    )
    assert created["name"] == "my-env"
    assert created["status"] == "running"
    ran = runtools(
        "sandbox", "exec", "my-env", "echo hi; echo oops >&2; exit 3", env=user_env, check=False
    )
    assert ran.returncode == 3
    assert ran.stdout == "hi\n"
    assert ran.stderr == "oops\n"
    as_json = runtools(
        "sandbox", "exec", "my-env", "echo $A", "--env", "A=1", "--json", env=user_env
    )
    assert json.loads(as_json.stdout)["stdout"] == "1\n"
    local = tmp_path / "in.txt"
    local.write_text("payload")
    runtools("sandbox", "files", "put", "my-env", str(local), "data/in.txt", env=user_env)
    listing = json.loads(
        runtools("sandbox", "files", "ls", "my-env", "data", "--json", env=user_env).stdout
    )
    assert [e["name"] for e in listing["data"]] == ["in.txt"]
    assert (
        runtools("sandbox", "files", "get", "my-env", "data/in.txt", env=user_env).stdout
        == "payload"
    )
    listed = json.loads(runtools("sandbox", "list", "--tag", "ci", "--json", env=user_env).stdout)
    assert [s["name"] for s in listed["data"]] == ["my-env"]
    assert "my-env" in runtools("sandbox", "list", env=user_env).stdout
    assert (
        json.loads(runtools("sandbox", "get", "my-env", "--json", env=user_env).stdout)["id"]
        == created["id"]
    )
    paused = json.loads(runtools("sandbox", "pause", "my-env", "--json", env=user_env).stdout)
    assert paused["status"] == "paused"
    refused = runtools("sandbox", "exec", "my-env", "true", env=user_env, check=False)
    assert refused.returncode == 1
    line = refused.stderr.strip()
    assert "\n" not in line
    assert "resume it first" in line
    assert "(request req_" in line
    runtools("sandbox", "resume", "my-env", env=user_env)
    gone = json.loads(runtools("sandbox", "destroy", "my-env", "--json", env=user_env).stdout)
    assert gone["status"] == "destroyed"


def test_exec_streams_output_live(user_env: dict[str, str]) -> None:
    runtools("sandbox", "create", "--name", "live", env=user_env)
    started = time.monotonic()
    command = "echo early; sleep 3; echo late"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtools", "sandbox", "exec", "live", command],
        env=user_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    early = time.monotonic() - started
    rest, _ = proc.communicate(timeout=30)
    assert first == "early\n"
    assert early < 2.8
    assert rest == "late\n"
    assert proc.returncode == 0


def test_errors_are_one_line_and_json_errors_are_json(user_env: dict[str, str]) -> None:
    missing = runtools("sandbox", "get", "nope", env=user_env, check=False)
    assert missing.returncode == 6  # not found
    assert missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("error: No sandbox 'nope' (request req_")
    as_json = runtools("sandbox", "get", "nope", "--json", env=user_env, check=False)
    assert json.loads(as_json.stdout)["error"]["code"] == "not_found"
    no_key = {k: v for k, v in user_env.items() if k != "RUNTOOLS_API_KEY"}
    unauthenticated = runtools("sandbox", "list", env=no_key, check=False)
    assert unauthenticated.returncode == 4
    assert "RUNTOOLS_API_KEY" in unauthenticated.stderr
    flag = runtools("sandbox", "list", "--api-key", user_env["RUNTOOLS_API_KEY"], env=no_key)
    assert flag.returncode == 0
    down = dict(user_env, RUNTOOLS_API_URL="http://127.0.0.1:9")
    unreachable = runtools("sandbox", "list", env=down, check=False)
    assert unreachable.returncode == 3
    assert unreachable.stderr.startswith("error: ")
    unreachable_json = runtools("sandbox", "list", "--json", env=down, check=False)
    error = json.loads(unreachable_json.stdout)["error"]
    assert error["code"] == "unavailable"
    assert error["requestId"] is None
    for bad in ("http://127.0.0.1:abc", "http://[::1"):
        malformed = runtools("--api-url", bad, "sandbox", "list", env=user_env, check=False)
        assert malformed.returncode == 2, malformed.stderr
        assert malformed.stderr.count("\n") == 1, malformed.stderr
        assert "Traceback" not in malformed.stderr


def test_the_global_api_url_outranks_the_environment(user_env: dict[str, str]) -> None:
    # The credential must go where the flag says, never to RUNTOOLS_API_URL's server.
    elsewhere = "http://127.0.0.1:9"  # nothing listens there
    sent = runtools("--api-url", elsewhere, "sandbox", "list", env=user_env, check=False)
    assert sent.returncode == 3, sent.stdout
    assert "127.0.0.1:9" in sent.stderr
    own = runtools("sandbox", "list", "--api-url", elsewhere, env=user_env, check=False)
    assert own.returncode == 3


def test_help_has_examples() -> None:
    for command in ("create", "list", "get", "exec", "pause", "resume", "destroy"):
        out = runtools("sandbox", command, "--help", env=dict(os.environ)).stdout
        assert "runtools sandbox" in out, command
        assert "Example" in out, command
    for command in ("put", "get", "ls"):
        out = runtools("sandbox", "files", command, "--help", env=dict(os.environ)).stdout
        assert "runtools sandbox files" in out, command
