"""``runtools auth keys …`` shown to people: what each column and field says."""

from __future__ import annotations

import re

from support.cli import CommandLine
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp

from .conftest import Person, mint


def test_a_key_in_its_rotation_grace_shows_when_the_grace_ends_not_never(
    cli: CommandLine, served: ServedApp, ada: Person, secret_registry: SecretRegistry
) -> None:
    _, old = mint(served, secret_registry, name="ci")
    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    rotated = cli("auth", "keys", "rotate", old, "--grace-period", "1h", "--json", env=as_ada).json
    secret_registry.add(rotated["key"])
    grace_end = cli("auth", "keys", "get", old, "--json", env=as_ada).json["revokedAt"]
    shown = f"{grace_end[:10]} {grace_end[11:16]} UTC"

    details = cli("auth", "keys", "get", old, env=as_ada).stdout
    assert re.search(r"Status:\s+expiring", details)
    assert re.search(rf"Expires:\s+{shown} \(rotated: grace ends\)", details), details
    assert re.search(rf"Revoked:\s+when the grace ends, {shown}", details), details
    listed = cli("auth", "keys", "list", env=as_ada).stdout
    row = next(line for line in listed.splitlines() if line.startswith(old))
    assert re.search(rf"expiring\s+{shown} \(rotated: grace ends\)", row), row
    # The successor has no expiry of its own.
    successor = cli("auth", "keys", "get", rotated["id"], env=as_ada).stdout
    assert re.search(r"Expires:\s+never", successor)
