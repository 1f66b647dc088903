"""SSH keys: registered by their owners, fingerprinted as OpenSSH does, private keys refused."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from runtools.server.runtime import Runtime
from runtools.server.store.models import AuditEvent, Base
from support.secret_registry import SecretRegistry
from support.tenants import Member

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)"
)


def keygen(tmp_path: Path, kind: str, *, bits: int | None = None, comment: str = "") -> Path:
    """A new key pair made by the real ssh-keygen; the private key's path."""
    path = tmp_path / f"id_{kind}_{bits or 'default'}_{len(list(tmp_path.iterdir()))}"
    command = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
    if bits:
        command[4:4] = ["-b", str(bits)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def fingerprint(public: Path) -> str:
    """What ``ssh-keygen -lf`` prints as the key's fingerprint."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(public)], check=True, capture_output=True, text=True
    ).stdout
    return out.split()[1]


def add(caller: Member, name: str, public_key: str) -> dict[str, Any]:
    response = caller.post("/v1/ssh-keys", json={"name": name, "publicKey": public_key})
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()["data"]
    return key


def pub(path: Path) -> str:
    return Path(f"{path}.pub").read_text()


@pytest.mark.parametrize(
    ("kind", "bits", "key_type"),
    [
        ("ed25519", None, "ssh-ed25519"),
        ("ecdsa", 256, "ecdsa-sha2-nistp256"),
        ("ecdsa", 384, "ecdsa-sha2-nistp384"),
        ("ecdsa", 521, "ecdsa-sha2-nistp521"),
        ("rsa", 3072, "ssh-rsa"),
    ],
)
def test_each_accepted_type_is_fingerprinted_as_ssh_keygen_prints_it(
    admin: Member, tmp_path: Path, kind: str, bits: int | None, key_type: str
) -> None:
    private = keygen(tmp_path, kind, bits=bits, comment="ada@laptop")
    key = add(admin, "laptop", pub(private))
    assert key["fingerprint"] == fingerprint(Path(f"{private}.pub"))
    assert key["keyType"] == key_type
    assert key["comment"] == "ada@laptop"
    assert key["ownerUserId"] == admin.user_id
    assert key["lastUsedAt"] is None
    assert set(key) == {
        "id",
        "name",
        "fingerprint",
        "keyType",
        "comment",
        "createdAt",
        "lastUsedAt",
        "ownerUserId",
    }
    assert admin.get(f"/v1/ssh-keys/{key['id']}").json()["data"] == key


def test_a_key_without_a_comment_has_none(admin: Member, tmp_path: Path) -> None:
    line = pub(keygen(tmp_path, "ed25519"))
    key = add(admin, "bare", " ".join(line.split()[:2]))
    assert key["comment"] is None


def test_weak_unknown_and_malformed_keys_are_400_and_nothing_is_stored(
    admin: Member, tmp_path: Path
) -> None:
    rsa2048 = pub(keygen(tmp_path, "rsa", bits=2048))
    ed = pub(keygen(tmp_path, "ed25519")).split()
    ecdsa256 = pub(keygen(tmp_path, "ecdsa", bits=256)).split()
    cases = {
        rsa2048: "at least 3072 bits",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP": "Unsupported key type",
        f'from="10.0.0.1" {ed[0]} {ed[1]}': "Unsupported key type",
        f"{ed[0]} not-base64!!": "not valid base64",
        f"{ed[0]} {ed[1][:-8]}": "not a valid",
        # An ECDSA blob presented as ed25519, and a P-256 blob as P-384.
        f"ssh-ed25519 {ecdsa256[1]}": "not a ssh-ed25519 key",
        f"ecdsa-sha2-nistp384 {ecdsa256[1]}": "not a ecdsa-sha2-nistp384 key",
        "ssh-ed25519": "no key data",
        f"{ed[0]} {ed[1]}\n{ed[0]} {ed[1]}": "one line",
        f"{ed[0]} {ed[1]} {'c' * 256}": "comment is longer",
    }
    for text, message in cases.items():
        response = admin.post("/v1/ssh-keys", json={"name": "bad", "publicKey": text})
        assert response.status_code == 400, (text, response.text)
        assert message in response.json()["error"]["message"], (text, response.text)
    for body in ({"name": "x"}, {"publicKey": " ".join(ed)}, {"name": "", "publicKey": "x"}):
        assert admin.post("/v1/ssh-keys", json=body).status_code == 400
    assert admin.get("/v1/ssh-keys").json()["data"] == []


def test_a_pasted_private_key_is_refused_and_never_stored_or_logged(
    admin: Member,
    runtime: Runtime,
    tmp_path: Path,
    secret_registry: SecretRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for kind, fmt in (("ed25519", []), ("rsa", ["-m", "PEM"]), ("ecdsa", ["-m", "PKCS8"])):
        path = tmp_path / f"private_{kind}"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, *fmt, "-N", "", "-f", str(path)],
            check=True,
            capture_output=True,
        )
        private = path.read_text()
        body_lines = [line for line in private.splitlines() if line and "-----" not in line]
        secret_registry.add(private)
        for line in body_lines:
            secret_registry.add(line)
        response = admin.post("/v1/ssh-keys", json={"name": "oops", "publicKey": private})
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert "private key" in message
        assert not any(line in response.text for line in body_lines)
        runtime.flush()
        with runtime.database.session() as session:
            stored = "\n".join(
                repr(row)
                for table in Base.metadata.sorted_tables
                for row in session.execute(select(table))
            )
        assert not any(line in stored for line in body_lines)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert not any(line in logged for line in body_lines)
    assert admin.get("/v1/ssh-keys").json()["data"] == []


def test_the_same_key_twice_in_one_org_is_409_in_another_org_fine(
    admin: Member, member: Member, outsider: Member, tmp_path: Path
) -> None:
    line = pub(keygen(tmp_path, "ed25519", comment="one"))
    first = add(admin, "laptop", line)
    # The same key with another comment is the same key.
    again = admin.post(
        "/v1/ssh-keys", json={"name": "again", "publicKey": line.replace("one", "two")}
    )
    assert again.status_code == 409, again.text
    assert first["fingerprint"] in again.json()["error"]["message"]
    assert member.post("/v1/ssh-keys", json={"name": "m", "publicKey": line}).status_code == 409
    assert add(outsider, "theirs", line)["fingerprint"] == first["fingerprint"]


def test_members_manage_their_own_keys_admins_every_key(
    admin: Member, member: Member, tmp_path: Path
) -> None:
    mine = add(member, "bob's", pub(keygen(tmp_path, "ed25519")))
    admins = add(admin, "ada's", pub(keygen(tmp_path, "ed25519")))
    assert [k["id"] for k in member.get("/v1/ssh-keys").json()["data"]] == [mine["id"]]
    assert [k["id"] for k in admin.get("/v1/ssh-keys").json()["data"]] == [admins["id"]]
    every = admin.get("/v1/ssh-keys", params={"all": "true"}).json()["data"]
    assert [k["id"] for k in every] == [admins["id"], mine["id"]]
    refused = member.get("/v1/ssh-keys", params={"all": "true"})
    assert refused.status_code == 403
    assert member.get(f"/v1/ssh-keys/{admins['id']}").status_code == 404
    assert member.delete(f"/v1/ssh-keys/{admins['id']}").status_code == 404
    assert admin.get(f"/v1/ssh-keys/{mine['id']}").status_code == 200
    removed = admin.delete(f"/v1/ssh-keys/{mine['id']}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["data"]["id"] == mine["id"]
    assert member.get(f"/v1/ssh-keys/{mine['id']}").status_code == 404
    assert member.get("/v1/ssh-keys").json()["data"] == []


def test_another_organizations_key_is_404(admin: Member, outsider: Member, tmp_path: Path) -> None:
    theirs = add(outsider, "eve's", pub(keygen(tmp_path, "ed25519")))
    assert admin.get(f"/v1/ssh-keys/{theirs['id']}").status_code == 404
    assert admin.delete(f"/v1/ssh-keys/{theirs['id']}").status_code == 404
    assert admin.get("/v1/ssh-keys", params={"all": "true"}).json()["data"] == []
    assert outsider.get(f"/v1/ssh-keys/{theirs['id']}").status_code == 200


def test_scopes_ssh_key_read_and_write(
    admin: Member, secret_registry: SecretRegistry, tmp_path: Path
) -> None:
    reader = admin.create_key(secret_registry, name="reader", scopes=["ssh-key:read"])["key"]
    writer = admin.create_key(secret_registry, name="writer", scopes=["ssh-key:write"])["key"]
    other = admin.create_key(secret_registry, name="other", scopes=["sandbox:read"])["key"]
    line = pub(keygen(tmp_path, "ed25519"))
    body = {"name": "k", "publicKey": line}
    http = admin.http
    refused = http.post("/v1/ssh-keys", json=body, headers={"X-API-Key": reader})
    assert refused.status_code == 403
    assert "ssh-key:write" in refused.json()["error"]["message"]
    created = http.post("/v1/ssh-keys", json=body, headers={"X-API-Key": writer})
    assert created.status_code == 201, created.text
    key_id = created.json()["data"]["id"]
    assert http.get("/v1/ssh-keys", headers={"X-API-Key": reader}).status_code == 200
    assert http.get(f"/v1/ssh-keys/{key_id}", headers={"X-API-Key": other}).status_code == 403
    assert http.delete(f"/v1/ssh-keys/{key_id}", headers={"X-API-Key": reader}).status_code == 403
    assert http.delete(f"/v1/ssh-keys/{key_id}", headers={"X-API-Key": writer}).status_code == 200


def test_adding_and_removing_are_audited_with_the_fingerprint(
    admin: Member, member: Member, runtime: Runtime, tmp_path: Path
) -> None:
    key = add(member, "bob's", pub(keygen(tmp_path, "ed25519")))
    assert admin.delete(f"/v1/ssh-keys/{key['id']}").status_code == 200
    runtime.flush()
    with runtime.database.session() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.target_id == key["id"]).order_by(AuditEvent.id)
        ).all()
        recorded = [
            (e.action, e.actor_id, e.org_id, e.target_type, e.details["fingerprint"])
            for e in events
        ]
        owners = {e.details["ownerUserId"] for e in events}
    assert recorded == [
        ("ssh_key.created", member.key_id, admin.org_id, "ssh_key", key["fingerprint"]),
        ("ssh_key.deleted", admin.key_id, admin.org_id, "ssh_key", key["fingerprint"]),
    ]
    assert owners == {member.user_id}
