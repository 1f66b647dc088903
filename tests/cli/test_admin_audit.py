"""``runtools admin audit verify|export|public-key``, and the offline verifier in the docs.

The verifier is the exact snippet of docs/security.md, run as its own Python
process on the export the command wrote.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from runtools.server.settings import Settings
from runtools.server.store.database import Database
from support.cli import CommandLine

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)


@pytest.fixture
def admin(settings: Settings) -> CommandLine:
    env = {"RUNTOOLS_HOME": str(settings.home)}
    if settings.database_url:
        env["RUNTOOLS_DATABASE_URL"] = settings.database_url
    command = CommandLine(env)
    # Something to audit: a key minted by the operator is an api_key.created event.
    command("admin", "create-org", "acme")
    command("admin", "create-user", "ada@example.com", "--org", "acme", "--role", "admin")
    for name in ("ci", "deploy", "backup"):
        command("admin", "create-key", "--org", "acme", "--user", "ada@example.com",
                "--name", name)  # fmt: skip
    return command


def tamper(settings: Settings, statement: str) -> None:
    """Change the audit table as a database owner could: the triggers lifted first."""
    database = Database(settings)
    try:
        with database.engine.begin() as connection:
            if database.dialect == "postgresql":
                connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            else:
                connection.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            connection.execute(text(statement))
    finally:
        database.engine.dispose()


def second_event_id(settings: Settings) -> str:
    database = Database(settings)
    try:
        with database.engine.connect() as connection:
            return str(
                connection.execute(text("SELECT id FROM audit_events WHERE seq = 2")).scalar()
            )
    finally:
        database.engine.dispose()


def verifier(tmp_path: Path) -> Path:
    """The verifier exactly as docs/security.md shows it."""
    document = DOCS.read_text()
    found = re.search(r"<!-- audit-verifier -->\n```python\n(.*?)```", document, re.S)
    assert found, "docs/security.md lost its audit verifier"
    path = tmp_path / "verify_audit.py"
    path.write_text(found.group(1))
    return path


def run_verifier(tmp_path: Path, public_key: str, export: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(verifier(tmp_path)), public_key, str(export)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_verify_says_the_chain_holds_and_names_the_event_altered(
    admin: CommandLine, settings: Settings
) -> None:
    held = admin("admin", "audit", "verify")
    assert held.exit_code == 0
    assert "The audit chain holds: 3 events" in held.stdout
    assert admin("admin", "audit", "verify", "--json").json["ok"] is True

    victim = second_event_id(settings)
    tamper(settings, f"UPDATE audit_events SET actor_type = 'nobody' WHERE id = '{victim}'")
    broken = admin("admin", "audit", "verify", check=False)
    assert broken.exit_code == 1
    assert f"event {victim} (seq 2)" in broken.stderr
    assert "altered" in broken.stderr
    as_json = admin("admin", "audit", "verify", "--json", check=False)
    assert as_json.exit_code == 1
    assert (as_json.json["ok"], as_json.json["brokenEventId"], as_json.json["brokenSeq"]) == (
        False,
        victim,
        2,
    )


def test_an_export_checks_offline_with_the_documented_verifier(
    admin: CommandLine, settings: Settings, tmp_path: Path
) -> None:
    export = tmp_path / "audit.jsonl"
    made = admin("admin", "audit", "export", "--out", str(export), "--json").json
    assert made["events"] == 3
    assert export.stat().st_mode & 0o777 == 0o600
    public_key = admin("admin", "audit", "public-key").stdout.strip()
    assert made["publicKey"] == public_key
    lines = export.read_text().splitlines()
    assert json.loads(lines[0])["publicKey"] == public_key
    assert len(lines) == 1 + 3 + 1
    assert {json.loads(line)["action"] for line in lines[1:-1]} >= {"api_key.created"}

    checked = run_verifier(tmp_path, public_key, export)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: 3 events")

    # An event changed in the file: the signature no longer verifies.
    altered = tmp_path / "altered.jsonl"
    altered.write_text(export.read_text().replace('"api_key.created"', '"api_key.deleted"', 1))
    assert altered.read_text() != export.read_text()
    refused = run_verifier(tmp_path, public_key, altered)
    assert refused.returncode != 0
    assert "InvalidSignature" in refused.stderr

    # Another key's export (re-signed by a forger) does not verify with ours.

    forger = Ed25519PrivateKey.generate()

    body = "".join(line + "\n" for line in altered.read_text().splitlines()[:-1]).encode()
    forged = tmp_path / "forged.jsonl"
    signature = base64.b64encode(forger.sign(hashlib.sha256(body).digest())).decode()
    forged.write_bytes(body + json.dumps({"signature": signature}).encode() + b"\n")
    assert run_verifier(tmp_path, public_key, forged).returncode != 0


def test_an_export_of_a_signed_but_broken_chain_fails_the_verifier_naming_the_event(
    admin: CommandLine, settings: Settings, tmp_path: Path
) -> None:
    """Signed by us over an event whose hash no longer matches (the verifier recomputes)."""

    forger = Ed25519PrivateKey.generate()

    public_key = base64.b64encode(
        forger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()
    export = tmp_path / "audit.jsonl"
    admin("admin", "audit", "export", "--out", str(export))
    lines = export.read_text().splitlines()[:-1]
    event = json.loads(lines[2])
    event["ip"] = "198.51.100.66"
    lines[2] = json.dumps(event)
    body = "".join(line + "\n" for line in lines).encode()
    signature = base64.b64encode(forger.sign(hashlib.sha256(body).digest())).decode()
    export.write_bytes(body + json.dumps({"signature": signature}).encode() + b"\n")
    checked = run_verifier(tmp_path, public_key, export)
    assert checked.returncode != 0
    assert f"broken at event {event['id']} (seq 2)" in checked.stderr


def test_export_of_a_broken_chain_exits_1_saying_where(
    admin: CommandLine, settings: Settings, tmp_path: Path
) -> None:
    victim = second_event_id(settings)
    tamper(settings, f"UPDATE audit_events SET outcome = 'failure' WHERE id = '{victim}'")
    export = tmp_path / "audit.jsonl"
    result = admin("admin", "audit", "export", "--out", str(export), check=False)
    assert result.exit_code == 1
    assert f"exported 1 events to {export}" in result.stderr
    assert victim in result.stderr
    # What was written holds up to the break, and says nothing past it.
    public_key = admin("admin", "audit", "public-key").stdout.strip()
    checked = run_verifier(tmp_path, public_key, export)
    assert checked.returncode == 0
    assert checked.stdout.startswith("ok: 1 events")
