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


def test_where_a_key_may_be_used_from_and_a_canary_are_set_shown_and_changed(
    cli: CommandLine, served: ServedApp, ada: Person, secret_registry: SecretRegistry
) -> None:
    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    made = cli(
        "auth", "keys", "create", "office", "--allow-browser",
        "--allow-cidr", "127.0.0.0/8", "--allow-cidr", "2001:db8::/32", "--json", env=as_ada,
    ).json  # fmt: skip
    secret_registry.add(made["key"])
    assert (made["allowBrowser"], made["allowedCidrs"]) == (True, ["127.0.0.0/8", "2001:db8::/32"])
    details = cli("auth", "keys", "get", made["id"], env=as_ada).stdout
    assert re.search(r"From browsers:\s+allowed", details)
    assert re.search(r"Networks:\s+127\.0\.0\.0/8 2001:db8::/32", details)
    changed = cli(
        "auth", "keys", "update", made["id"], "--refuse-browser", "--any-address", "--json",
        env=as_ada,
    ).json  # fmt: skip
    assert (changed["allowBrowser"], changed["allowedCidrs"]) == (False, [])
    bad = cli(
        "auth", "keys", "create", "bad", "--allow-cidr", "10.0.0.1/8", env=as_ada, check=False
    )
    assert bad.exit_code != 0
    assert "allowedCidrs" in bad.stderr

    canary = cli(
        "auth", "keys", "create", "aws-backup-creds", "--canary", "--json", env=as_ada
    ).json
    secret_registry.add(canary["key"])
    assert (canary["isCanary"], canary["status"]) == (True, "canary")
    assert re.search(r"Canary:\s+yes", cli("auth", "keys", "get", canary["id"], env=as_ada).stdout)
    refused = cli("auth", "status", env={"RUNTOOLS_API_KEY": canary["key"]}, check=False)
    assert refused.exit_code != 0


def test_a_key_revoked_as_leaked_says_so(
    cli: CommandLine, served: ServedApp, ada: Person, secret_registry: SecretRegistry
) -> None:
    from datetime import UTC, datetime

    from runtools.server.domain.secret_scanning import LEAKED
    from runtools.server.store.repositories import api_keys

    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    _, leaked = mint(served, secret_registry, name="pushed")
    _, revoked = mint(served, secret_registry, name="retired")
    with served.runtime.database.session() as session:  # as a secret scanning report does
        assert api_keys.revoke_if_live(session, leaked, datetime.now(UTC), LEAKED)
        session.commit()
    assert cli("auth", "keys", "revoke", revoked, "--yes", env=as_ada).exit_code == 0

    details = cli("auth", "keys", "get", leaked, env=as_ada).stdout
    assert re.search(r"Revoked:\s+\S+ \S+ UTC \(leaked: found in public", details), details
    assert cli("auth", "keys", "get", leaked, "--json", env=as_ada).json["revokedReason"] == LEAKED
    details = cli("auth", "keys", "get", revoked, env=as_ada).stdout
    assert re.search(r"Revoked:\s+\S+ \S+ UTC \(revoked\)", details), details


def test_revoke_tells_what_the_key_did_in_the_last_30_days(
    cli: CommandLine, served: ServedApp, ada: Person, secret_registry: SecretRegistry
) -> None:
    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    child = cli("auth", "keys", "create", "child", "--json", env=as_ada).json
    secret_registry.add(child["key"])
    shown = cli("auth", "keys", "revoke", child["id"], "--yes", env=as_ada).stdout
    assert "In the last 30 days it did nothing the audit log records." in shown

    made = cli("auth", "keys", "create", "maker", "--json", env=as_ada).json
    secret_registry.add(made["key"])
    as_maker = {"RUNTOOLS_API_KEY": made["key"]}
    grandchild = cli("auth", "keys", "create", "g", "--json", env=as_maker).json
    secret_registry.add(grandchild["key"])
    shown = cli("auth", "keys", "revoke", made["id"], "--yes", env=as_ada).stdout
    assert "it did 1 audited act, on 1 target:" in shown, shown
    assert re.search(r"^\s+1\s+api_key\.created$", shown, re.M), shown
    as_json = cli("auth", "keys", "revoke", made["id"], "--yes", "--json", env=as_ada).json
    assert as_json["blastRadius"]["actions"] == [{"action": "api_key.created", "count": 1}]


def test_usage_by_day_and_the_last_week_in_get(
    cli: CommandLine, served: ServedApp, ada: Person, secret_registry: SecretRegistry
) -> None:
    as_ada = {"RUNTOOLS_API_KEY": ada.key}
    made = cli("auth", "keys", "create", "counted", "--json", env=as_ada).json
    secret_registry.add(made["key"])
    assert cli("auth", "keys", "list", env={"RUNTOOLS_API_KEY": made["key"]}).exit_code == 0
    served.runtime.usage.flush()
    days = cli("auth", "keys", "usage", made["id"], "--days", "2", "--json", env=as_ada).json
    assert [sorted(d) for d in days] == [
        ["day", "invalid", "lastAddress", "rateLimited", "requests"]
    ] * 2
    assert days[-1]["requests"] == 1
    table = cli("auth", "keys", "usage", made["id"], "--days", "2", env=as_ada).stdout
    assert re.search(r"^\d{4}-\d\d-\d\d\s+1\s+0\s+0\s+\S+$", table, re.M), table
    shown = cli("auth", "keys", "get", made["id"], env=as_ada).stdout
    assert re.search(r"Last 7 days:\s+1 requests, 0 refused as invalid, 0 rate limited", shown)
    refused = cli("auth", "keys", "usage", made["id"], "--days", "0", env=as_ada, check=False)
    assert refused.exit_code == 2
