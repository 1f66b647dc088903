"""``runtools sandbox …`` driven as a user would, against a live server.

The commands run in-process (``support.cli``) against the real app on a
socket, sandboxes and all; live streaming is watched through a real
process's pipe, as a terminal would see it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import CommandLine
from support.rootfs import build_rootfs, rootfs_tar
from support.served_app import ServedApp

from .conftest import Person

pytestmark = pytest.mark.slow


@pytest.fixture
def user(served: ServedApp, ada: Person, tmp_path: Path) -> CommandLine:
    """``runtools`` with ada's key in RUNTOOLS_API_KEY."""
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    return CommandLine(
        {
            "RUNTOOLS_API_KEY": ada.key,
            "RUNTOOLS_API_URL": served.url,
            "RUNTOOLS_CONFIG_DIR": str(tmp_path / "cli"),
        }
    )


def test_create_exec_files_and_destroy_by_name(user: CommandLine, tmp_path: Path) -> None:
    created = user("sandbox", "create", "--name", "my-env", "--tag", "ci", "--json").json
    assert created["name"] == "my-env"
    assert created["status"] == "running"
    ran = user("sandbox", "exec", "my-env", "echo hi; echo oops >&2; exit 3", check=False)
    assert ran.exit_code == 3
    assert ran.stdout == "hi\n"
    assert ran.stderr == "oops\n"
    as_json = user("sandbox", "exec", "my-env", "echo $A", "--env", "A=1", "--json")
    assert as_json.json["stdout"] == "1\n"
    local = tmp_path / "in.txt"
    local.write_text("payload")
    user("sandbox", "files", "put", "my-env", str(local), "data/in.txt")
    listing = user("sandbox", "files", "ls", "my-env", "data", "--json").json
    assert [e["name"] for e in listing["data"]] == ["in.txt"]
    assert user("sandbox", "files", "get", "my-env", "data/in.txt").stdout == "payload"
    listed = user("sandbox", "list", "--tag", "ci", "--json").json
    assert [s["name"] for s in listed["data"]] == ["my-env"]
    assert "my-env" in user("sandbox", "list").stdout
    assert user("sandbox", "get", "my-env", "--json").json["id"] == created["id"]
    paused = user("sandbox", "pause", "my-env", "--json").json
    assert paused["status"] == "paused"
    refused = user("sandbox", "exec", "my-env", "true", check=False)
    assert refused.exit_code == 1
    line = refused.stderr.strip()
    assert "\n" not in line
    assert "resume it first" in line
    assert "(request req_" in line
    user("sandbox", "resume", "my-env")
    user("sandbox", "exec", "my-env", "sleep 300 >/dev/null 2>&1 &")
    killed = user("sandbox", "kill", "my-env", "--json").json
    assert killed["status"] == "running"
    left = user("sandbox", "exec", "my-env", "ps -e -o args=; cat data/in.txt").stdout
    assert "sleep 300" not in left.splitlines()
    assert left.endswith("payload")
    gone = user("sandbox", "destroy", "my-env", "--json").json
    assert gone["status"] == "destroyed"


def test_exec_streams_output_live(user: CommandLine) -> None:
    """The smoke test of live output: a ``runtools`` process, read line by line."""
    user("sandbox", "create", "--name", "live")
    command = "echo early; sleep 3; echo late"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    env.update({k: v for k, v in user.env.items() if v is not None})
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtools", "sandbox", "exec", "live", command],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    early = time.monotonic()
    rest, _ = proc.communicate(timeout=60)
    late = time.monotonic()
    assert first == "early\n"
    # The first line came while the command still slept: the second came seconds after
    # it. (Measured between the two lines, not from the start: a loaded machine may
    # take seconds to start the process, never to buffer three seconds of output.)
    assert late - early > 1.5
    assert rest == "late\n"
    assert proc.returncode == 0


def test_errors_are_one_line_and_json_errors_are_json(user: CommandLine) -> None:
    missing = user("sandbox", "get", "nope", check=False)
    assert missing.exit_code == 6  # not found
    assert missing.stderr.count("\n") == 1
    assert missing.stderr.startswith("error: No sandbox 'nope' (request req_")
    as_json = user("sandbox", "get", "nope", "--json", check=False)
    assert as_json.json["error"]["code"] == "not_found"
    no_key = {"RUNTOOLS_API_KEY": None}
    unauthenticated = user("sandbox", "list", env=no_key, check=False)
    assert unauthenticated.exit_code == 4
    assert "RUNTOOLS_API_KEY" in unauthenticated.stderr
    key = user.env["RUNTOOLS_API_KEY"]
    assert key is not None
    flag = user("sandbox", "list", "--api-key", key, env=no_key)
    assert flag.exit_code == 0
    down = {"RUNTOOLS_API_URL": "http://127.0.0.1:9"}
    unreachable = user("sandbox", "list", env=down, check=False)
    assert unreachable.exit_code == 3
    assert unreachable.stderr.startswith("error: ")
    unreachable_json = user("sandbox", "list", "--json", env=down, check=False)
    error = unreachable_json.json["error"]
    assert error["code"] == "unavailable"
    assert error["requestId"] is None
    for bad in ("http://127.0.0.1:abc", "http://[::1"):
        malformed = user("--api-url", bad, "sandbox", "list", check=False)
        assert malformed.exit_code == 2, malformed.stderr
        assert malformed.stderr.count("\n") == 1, malformed.stderr
        assert "Traceback" not in malformed.stderr


def test_the_global_api_url_outranks_the_environment(user: CommandLine) -> None:
    # The credential must go where the flag says, never to RUNTOOLS_API_URL's server.
    elsewhere = "http://127.0.0.1:9"  # nothing listens there
    sent = user("--api-url", elsewhere, "sandbox", "list", check=False)
    assert sent.exit_code == 3, sent.stdout
    assert "127.0.0.1:9" in sent.stderr
    own = user("sandbox", "list", "--api-url", elsewhere, check=False)
    assert own.exit_code == 3


def test_help_has_examples() -> None:
    help_of = CommandLine({})
    for command in ("create", "list", "get", "exec", "pause", "resume", "destroy", "kill"):
        out = help_of("sandbox", command, "--help").stdout
        assert "runtools sandbox" in out, command
        assert "Example" in out, command
    for command in ("put", "get", "ls"):
        out = help_of("sandbox", "files", command, "--help").stdout
        assert "runtools sandbox files" in out, command


def test_a_folder_goes_up_in_one_call_and_comes_back(user: CommandLine, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    for i in range(50):
        (project / "src" / f"m{i}.py").write_text(f"N = {i}\n")
    (project / "link").symlink_to("src/m1.py")
    user("sandbox", "create", "--name", "folders")
    sent = user("sandbox", "files", "put", "folders", str(project), "/workspace/project", "--json")
    assert sent.json["files"] == 50
    assert sent.json["path"] == "/workspace/project"
    ran = user("sandbox", "exec", "folders", "ls project/src | wc -l; cat project/link")
    assert ran.stdout == "50\nN = 1\n"
    user("sandbox", "files", "get", "folders", "/workspace/project", str(tmp_path / "back"))
    assert (tmp_path / "back" / "src" / "m49.py").read_text() == "N = 49\n"
    assert (tmp_path / "back" / "link").is_symlink()
    as_tar = user("sandbox", "files", "get", "folders", "project/src")
    assert as_tar.stdout[257:262] == "ustar"  # a tar on stdout


def test_templates_are_listed_and_a_sandbox_starts_from_one(
    user: CommandLine, served: ServedApp, tmp_path: Path
) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    tarball = rootfs_tar(build_rootfs(rootfs), tmp_path / "tiny.tar.gz")
    served.runtime.templates.import_template("tiny", tarball)
    listed = user("sandbox", "templates").stdout.splitlines()
    assert listed[0].startswith("host-debian, base-ubuntu")
    assert listed[0].endswith("(default)")
    assert listed[1].split() == ["tiny", "Tiny", "Test", "Linux", "1.0"]
    as_json = user("sandbox", "templates", "--json").json
    assert [t["name"] for t in as_json["data"]] == ["host-debian", "tiny"]
    user("sandbox", "create", "--name", "small", "--template", "tiny")
    assert user("sandbox", "exec", "small", "cat /marker").stdout == "made for a template test\n"
    unknown = user("sandbox", "create", "--template", "windows-11", check=False)
    assert unknown.exit_code != 0
    assert "available: host-debian, base-ubuntu, tiny" in unknown.stderr
