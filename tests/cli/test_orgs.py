"""``runtools org …`` and ``runtools invite accept``, driven as people would."""

from __future__ import annotations

import re
from pathlib import Path

from support.cli import CommandLine
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp

from .conftest import Person, person, sign_in


def test_an_admin_invites_and_the_invitee_joins_then_is_made_admin_and_removed(
    cli: CommandLine,
    served: ServedApp,
    ada: Person,
    tmp_path: Path,
    secret_registry: SecretRegistry,
) -> None:
    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    person(served, secret_registry, "bob@example.com", org="globex")
    bobs_config = tmp_path / "bob"
    sign_in(served.url, bobs_config, secret_registry, email="bob@example.com")
    as_bob = {"RUNTOOLS_CONFIG_DIR": str(bobs_config)}

    invited = cli("org", "invite", "bob@example.com", "--role", "member", env=as_ada)
    token = secret_registry.add(invited.stdout.strip())
    assert token.startswith("rt_inv_")
    assert "only time the token is shown" in invited.stderr
    assert token not in invited.stderr
    listed = cli("org", "invitations", env=as_ada).stdout
    assert re.search(r"bob@example.com\s+member\s+pending", listed), listed
    assert token not in listed

    joined = cli("invite", "accept", token, env=as_bob)
    assert re.search(r"Organization:\s+acme \(org_", joined.stdout), joined.stdout
    again = cli("invite", "accept", token, env=as_bob, check=False)
    assert again.exit_code == 6

    members = cli("org", "members", "--json", env=as_ada).json["data"]
    assert {m["email"]: m["role"] for m in members} == {
        "ada@example.com": "admin",
        "bob@example.com": "member",
    }
    promoted = cli("org", "role", "bob@example.com", "admin", env=as_ada)
    assert promoted.stdout.strip() == "bob@example.com is now admin."
    orgs = cli("org", "list", "--json", env=as_bob).json["data"]
    assert {(o["name"], o["role"]) for o in orgs} == {("globex", "admin"), ("acme", "admin")}

    removed = cli("org", "remove", "bob@example.com", "--yes", env=as_ada)
    assert "Removed bob@example.com" in removed.stdout
    nobody = cli("org", "remove", "bob@example.com", "--yes", env=as_ada, check=False)
    assert nobody.exit_code == 6
    assert "no member bob@example.com" in nobody.stderr


def test_create_rename_switch_and_the_last_admin_cannot_leave(
    cli: CommandLine,
    served: ServedApp,
    ada: Person,
    tmp_path: Path,
    secret_registry: SecretRegistry,
) -> None:
    sign_in(served.url, tmp_path / "cli", secret_registry)
    created = cli("org", "create", "newco")
    assert "you are its admin" in created.stdout
    table = cli("org", "list").stdout
    assert re.search(r"\*\s+org_\S+\s+acme\s+admin", table), table
    assert re.search(r"org_\S+\s+newco\s+admin", table), table
    cli("org", "switch", "newco")
    renamed = cli("org", "rename", "newco-labs")
    assert "to newco-labs" in renamed.stdout
    assert cli("auth", "status", "--json").json["organization"]["name"] == "newco-labs"
    stuck = cli("org", "leave", "--yes", check=False)
    assert stuck.exit_code != 0
    assert "last admin" in stuck.stderr


def test_an_admin_creates_renames_and_deletes_a_project_by_name(
    cli: CommandLine, ada: Person, secret_registry: SecretRegistry
) -> None:
    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    created = cli("project", "create", "web", "--color", "#3b82f6", "--json", env=as_ada).json
    assert created["name"] == "web"
    key = cli("auth", "keys", "create", "ci", "--project", created["id"], "--json", env=as_ada)
    secret_registry.add(key.json["key"])
    assert key.json["projectId"] == created["id"]
    listed = cli("project", "list", env=as_ada).stdout
    assert re.search(r"\*\s+\S+\s+Default", listed), listed
    assert re.search(rf"{created['id']}\s+web\s+#3b82f6", listed), listed
    renamed = cli("project", "rename", "web", "shop", env=as_ada)
    assert renamed.stdout.strip() == f"Renamed project {created['id']} to shop."
    deleted = cli("project", "delete", "shop", "--yes", env=as_ada)
    assert "1 key(s) and 0 sandbox(es) moved to the default project" in deleted.stdout
    gone = cli("project", "delete", "shop", "--yes", env=as_ada, check=False)
    assert gone.exit_code == 6
    assert "no project shop" in gone.stderr
    default = cli("project", "delete", "Default", "--yes", env=as_ada, check=False)
    assert default.exit_code != 0
    assert "default project cannot be deleted" in default.stderr


def test_an_admin_sets_the_key_policy_and_keys_beyond_it_are_refused(
    cli: CommandLine, served: ServedApp, ada: Person
) -> None:
    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    shown = cli("org", "policy", env=as_ada).stdout
    assert re.search(r"Longest key lifetime:\s+no limit", shown), shown
    changed = cli(
        "org", "policy", "--max-key-lifetime", "30d", "--require-expiry", "--json", env=as_ada
    ).json
    assert (changed["maxKeyLifetime"], changed["requireKeyExpiry"]) == ("30d", True)
    refused = cli("auth", "keys", "create", "forever", env=as_ada, check=False)
    assert refused.exit_code == 5
    assert "at most 30d" in refused.stderr
    cleared = cli("org", "policy", "--max-key-lifetime", "none", "--json", env=as_ada).json
    assert (cleared["maxKeyLifetime"], cleared["requireKeyExpiry"]) == (None, True)
    shown = cli("org", "policy", env=as_ada).stdout
    assert re.search(r"Keys must expire:\s+yes", shown), shown
    assert re.search(r"Unused keys revoked after:\s+never", shown), shown
    unused = cli("org", "policy", "--revoke-unused-after", "90", "--json", env=as_ada).json
    assert unused["revokeUnusedAfterDays"] == 90
    shown = cli("org", "policy", env=as_ada).stdout
    assert re.search(r"Unused keys revoked after:\s+90 days", shown), shown
    wrong = cli("org", "policy", "--revoke-unused-after", "soon", env=as_ada, check=False)
    assert wrong.exit_code == 2
    assert "number of days" in wrong.stderr
    off = cli("org", "policy", "--revoke-unused-after", "none", "--json", env=as_ada).json
    assert off["revokeUnusedAfterDays"] is None
