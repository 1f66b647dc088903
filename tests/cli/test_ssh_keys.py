"""``runtools ssh-key …``: a real key from ssh-keygen, registered, listed and removed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.cli import CommandLine
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp

from .conftest import Person, person

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)"
)


def keygen(path: Path, comment: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def test_add_list_and_remove_a_key_from_the_default_file(
    cli: CommandLine, ada: Person, tmp_path: Path
) -> None:
    home = tmp_path / "ada"
    private = keygen(home / ".ssh" / "id_ed25519", "ada@laptop")
    printed = subprocess.run(
        ["ssh-keygen", "-lf", f"{private}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    env = {"RUNTOOLS_API_KEY": ada.key, "HOME": str(home)}
    added = cli("ssh-key", "add", "my-laptop", env=env)
    assert f"ssh-ed25519 {printed}" in added.stdout
    listed = cli("ssh-key", "list", env=env).stdout
    assert "my-laptop" in listed
    assert printed in listed
    assert "ada@laptop" in listed
    [key] = cli("ssh-key", "list", "--json", env=env).json["data"]
    assert key["fingerprint"] == printed
    shown = cli("ssh-key", "get", key["id"], env=env).stdout
    assert printed in shown
    again = cli("ssh-key", "add", "twice", env=env, check=False)
    assert again.exit_code != 0
    assert "already registered" in again.stderr
    removed = cli("ssh-key", "remove", key["id"], "--yes", env=env)
    assert removed.stdout.strip() == f"Removed SSH key my-laptop ({key['id']})."
    assert cli("ssh-key", "list", "--json", env=env).json["data"] == []
    assert "No SSH keys" in cli("ssh-key", "list", env=env).stderr


def test_a_private_key_file_is_refused_before_it_is_sent(
    cli: CommandLine, ada: Person, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    private = keygen(tmp_path / "keys" / "deploy", "ci")
    secret_registry.add(private.read_text())
    env = {"RUNTOOLS_API_KEY": ada.key}
    refused = cli("ssh-key", "add", "ci", "--file", str(private), env=env, check=False)
    assert refused.exit_code == 2
    assert "is a private key" in refused.stderr
    assert f"did you mean {private}.pub?" in refused.stderr
    assert cli("ssh-key", "list", "--json", env=env).json["data"] == []
    missing = cli(
        "ssh-key", "add", "ci", "--file", str(tmp_path / "nope.pub"), env=env, check=False
    )
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr
    ok = cli("ssh-key", "add", "ci", "--file", f"{private}.pub", "--json", env=env).json
    assert ok["name"] == "ci"
    assert ok["comment"] == "ci"


def test_a_member_cannot_list_the_organizations_keys(
    cli: CommandLine, ada: Person, served: ServedApp, secret_registry: SecretRegistry
) -> None:
    bob = person(served, secret_registry, "bob@example.com", role="member")
    refused = cli("ssh-key", "list", "--all", env={"RUNTOOLS_API_KEY": bob.key}, check=False)
    assert refused.exit_code == 5
    assert "requires role admin" in refused.stderr
