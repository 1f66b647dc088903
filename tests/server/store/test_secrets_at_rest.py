"""What the database holds: hashes and display prefixes, never a secret."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from runtools.server.runtime import Runtime
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.tenants import Member, tampered


def _stored_bytes(settings: Settings, runtime: Runtime) -> bytes:
    runtime.flush()
    runtime.database.dispose()  # checkpoint and close, so the file has everything
    if settings.is_sqlite:
        files = [settings.sqlite_path, Path(f"{settings.sqlite_path}-wal")]
        return b"".join(p.read_bytes() for p in files if p.exists())
    url = urlsplit(settings.database_url or "")
    schema = parse_qs(url.query)["options"][0].split("=", 1)[1]
    plain = url._replace(query="").geturl()
    dump = subprocess.run(
        ["pg_dump", "--data-only", "--schema", schema, plain],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return dump.stdout


def test_the_database_holds_no_secret(
    admin: Member, secret_registry: SecretRegistry, settings: Settings, runtime: Runtime
) -> None:
    created = admin.create_key(secret_registry, name="ci", scopes=["sandbox:*"])
    rotated = admin.post(f"/v1/api-keys/{created['id']}/rotate", json={"gracePeriod": "1h"})
    successor = secret_registry.add(rotated.json()["data"]["key"])
    admin.http.get("/v1/me", headers={"X-API-Key": tampered(created["key"])})
    # A retried create: its response (with the secret) is kept for replay, sealed.
    idempotency_key = "retry-me-0123456789abcdef"
    retried = [
        admin.http.post(
            "/v1/api-keys",
            json={"name": "retried"},
            headers={**admin.headers(), "Idempotency-Key": idempotency_key},
        )
        for _ in range(2)
    ]
    assert retried[0].json() == retried[1].json()
    replayed = secret_registry.add(retried[1].json()["data"]["key"])
    invited = admin.post(
        f"/v1/organizations/{admin.org_id}/invitations", json={"email": "new@example.com"}
    )
    invitation = secret_registry.add(invited.json()["data"]["token"])
    secrets = [admin.key, created["key"], successor, replayed, invitation]

    stored = _stored_bytes(settings, runtime)
    assert created["keyPrefix"].encode() in stored  # the dump really holds our rows
    assert idempotency_key.encode() not in stored
    for secret in secrets:
        assert secret.encode() not in stored
        assert secret[12:].encode() not in stored  # nor the secret part on its own
    assert b"new@example.com" in stored  # the invitation's row is there, its token is not


def test_the_home_is_private_on_every_database(settings: Settings, admin: Member) -> None:
    # On PostgreSQL it was left to whatever created it first (the sandbox state: 0755).
    assert stat.S_IMODE(os.stat(settings.home).st_mode) == 0o700


def test_the_sqlite_files_are_private(settings: Settings, admin: Member) -> None:
    if not settings.is_sqlite:
        return
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{settings.sqlite_path}{suffix}")
        if path.exists():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
