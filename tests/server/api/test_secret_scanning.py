"""``POST /v1/secret-scanning/github``: GitHub reports our keys found in public; we revoke them.

Reports are signed here as GitHub signs them (ECDSA P-256, SHA-256, base64 DER)
with a key pair made by the test, whose public half is in the keys document
the server reads (a file, or GitHub's URL served by a local HTTP server), and
sent over real HTTP to the app on a socket.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from runtools.server.domain.secret_scanning import MAX_REPORT_BYTES
from runtools.server.settings import Settings
from runtools.server.store.models import ApiKey, AuditEvent
from support.secret_registry import SecretRegistry
from support.served_app import Caller, ServedApp, serve

URL = "/v1/secret-scanning/github"
LEAK_URL = "https://github.com/octo/demo/blob/0123abc/config.py"


class GitHubSigner:
    """A key pair standing in for one of GitHub's, and the keys document naming it."""

    def __init__(self, identifier: str) -> None:
        self.identifier = identifier
        self.private = ec.generate_private_key(ec.SECP256R1())

    def entry(self, *, current: bool = True) -> dict[str, Any]:
        pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"key_identifier": self.identifier, "key": pem.decode(), "is_current": current}

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def headers(self, body: bytes) -> dict[str, str]:
        return {
            "Github-Public-Key-Identifier": self.identifier,
            "Github-Public-Key-Signature": self.sign(body),
            "Content-Type": "application/json",
        }


def document(*signers: GitHubSigner) -> str:
    return json.dumps({"public_keys": [signer.entry() for signer in signers]})


def report(*tokens: str, url: str = LEAK_URL) -> bytes:
    return json.dumps(
        [{"token": t, "type": "runtools_api_key", "url": url, "source": "content"} for t in tokens]
    ).encode()


@pytest.fixture
def github() -> GitHubSigner:
    return GitHubSigner("90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a")


@pytest.fixture
def keys_file(tmp_path: Path, github: GitHubSigner) -> Path:
    path = tmp_path / "github-keys.json"
    path.write_text(document(github))
    return path


@pytest.fixture
def scanning_settings(tmp_path: Path, database_url: str | None, keys_file: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        github_secret_scanning_keys_file=keys_file,
        # Nothing to reach: every key comes from the file.
        github_secret_scanning_keys_url="http://127.0.0.1:9/unreachable",
        _env_file=None,
    )


@pytest.fixture
def served(scanning_settings: Settings, secret_registry: SecretRegistry) -> Iterator[ServedApp]:
    with serve(scanning_settings, secret_registry) as app:
        yield app


@pytest.fixture
def ada(served: ServedApp) -> Caller:
    """An admin of acme."""
    return served.caller("acme", "ada@example.com", "admin")


@pytest.fixture
def bob(served: ServedApp, ada: Caller) -> Caller:
    """A member of acme."""
    return served.caller("acme", "bob@example.com", "member")


def make_key(caller: Caller, registry: SecretRegistry, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "deploy")
    created = caller.post("/v1/api-keys", json=body)
    assert created.status_code == 201, created.text
    data: dict[str, Any] = created.json()["data"]
    registry.add(data["key"])
    return data


def send(served: ServedApp, body: bytes, headers: dict[str, str]) -> httpx.Response:
    # Unauthenticated, as GitHub calls: no X-API-Key, no Authorization.
    return httpx.post(served.url + URL, content=body, headers=headers, timeout=30)


def leak_events(served: ServedApp) -> list[AuditEvent]:
    served.runtime.flush()
    with served.runtime.database.session() as session:
        rows = session.query(AuditEvent).filter(AuditEvent.reason == "leaked").all()
        session.expunge_all()
        return rows


def stored_key(served: ServedApp, key_id: str) -> ApiKey:
    with served.runtime.database.session() as session:
        key = session.get_one(ApiKey, key_id)
        session.expunge(key)
        return key


def test_a_signed_report_revokes_a_live_key_at_once_and_labels_every_token(
    served: ServedApp,
    ada: Caller,
    bob: Caller,
    github: GitHubSigner,
    secret_registry: SecretRegistry,
) -> None:
    leaked = make_key(bob, secret_registry)
    kept = make_key(bob, secret_registry, name="kept")
    assert bob.get("/v1/me", headers={"X-API-Key": leaked["key"]}).status_code == 200  # cached
    unknown = "rt_live_" + "A" * 38
    body = report(leaked["key"], unknown, "not-a-runtools-key", "rt_live_short")

    answered = send(served, body, github.headers(body))

    assert answered.status_code == 200, answered.text
    assert answered.json() == [
        {"token_raw": leaked["key"], "token_type": "runtools_api_key", "label": "true_positive"},
        {"token_raw": unknown, "token_type": "runtools_api_key", "label": "false_positive"},
        {
            "token_raw": "not-a-runtools-key",
            "token_type": "runtools_api_key",
            "label": "false_positive",
        },
        {"token_raw": "rt_live_short", "token_type": "runtools_api_key", "label": "false_positive"},
    ]
    # Refused at once, though it was cached a moment ago; the other key is untouched.
    refused = bob.get("/v1/me", headers={"X-API-Key": leaked["key"]})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert bob.get("/v1/me", headers={"X-API-Key": kept["key"]}).status_code == 200
    # The owner sees why on the key; the stored row says the same.
    shown = bob.get(f"/v1/api-keys/{leaked['id']}").json()["data"]
    assert shown["status"] == "revoked"
    assert shown["revokedReason"] == "leaked"
    assert shown["revokedAt"] is not None
    assert bob.get(f"/v1/api-keys/{kept['id']}").json()["data"]["revokedReason"] is None
    assert stored_key(served, leaked["id"]).revoked_reason == "leaked"
    # The organization's admins see it in the audit log, with where it was found.
    events = ada.get("/v1/audit-logs", params={"action": "api_key.revoked"}).json()["data"]
    assert len(events) == 1
    event = events[0]
    assert event["reason"] == "leaked"
    assert event["actorType"] == "secret_scanning"
    assert event["targetId"] == leaked["id"]
    assert event["orgId"] == leaked["orgId"]
    assert event["details"]["url"] == LEAK_URL
    assert event["details"]["source"] == "content"
    assert event["details"]["reporter"] == "github"
    assert event["details"]["ownerUserId"] == bob.user_id
    assert event["details"]["publicKeyIdentifier"] == github.identifier
    assert leaked["key"] not in json.dumps(event)
    # The owner, a member who cannot read the organization's audit log, reads the key's.
    assert bob.get("/v1/audit-logs").status_code == 403
    served.runtime.flush()  # the refused use above is queued for the batch writer
    own = bob.get(f"/v1/api-keys/{leaked['id']}/events")
    assert own.status_code == 200
    listed = {(e["action"], e["reason"]): e for e in own.json()["data"]}
    assert len(listed) == len(own.json()["data"]) == 3
    assert set(listed) == {
        ("api_key.created", None),
        ("api_key.revoked", "leaked"),
        ("auth.failed", "revoked"),  # its use after the report
    }
    assert listed["api_key.revoked", "leaked"]["details"]["url"] == LEAK_URL
    assert ada.get(f"/v1/api-keys/{leaked['id']}/events").json()["data"] == own.json()["data"]


def test_a_keys_events_are_its_owners_and_admins_only(
    served: ServedApp, ada: Caller, bob: Caller, secret_registry: SecretRegistry
) -> None:
    adas = make_key(ada, secret_registry, name="ada's")
    refused = bob.get(f"/v1/api-keys/{adas['id']}/events")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    eve = served.caller("globex", "eve@globex.example", "admin")
    assert eve.get(f"/v1/api-keys/{adas['id']}/events").status_code == 404
    bobs = make_key(bob, secret_registry, name="bob's")
    assert bob.patch(f"/v1/api-keys/{bobs['id']}", json={"name": "renamed"}).status_code == 200
    page = bob.get(f"/v1/api-keys/{bobs['id']}/events", params={"limit": 1}).json()
    assert len(page["data"]) == 1
    assert page["meta"]["hasMore"] is True
    rest = bob.get(
        f"/v1/api-keys/{bobs['id']}/events", params={"cursor": page["meta"]["nextCursor"]}
    ).json()
    assert rest["meta"]["hasMore"] is False
    actions = [e["action"] for e in page["data"] + rest["data"]]
    assert sorted(actions) == ["api_key.created", "api_key.updated"]


def test_a_replayed_report_changes_nothing_and_is_answered_the_same(
    served: ServedApp, bob: Caller, github: GitHubSigner, secret_registry: SecretRegistry
) -> None:
    leaked = make_key(bob, secret_registry)
    body = report(leaked["key"], leaked["key"])  # named twice in one report, too
    first = send(served, body, github.headers(body))
    assert first.status_code == 200
    assert [t["label"] for t in first.json()] == ["true_positive", "true_positive"]
    revoked_at = stored_key(served, leaked["id"]).revoked_at

    again = send(served, body, github.headers(body))

    assert again.status_code == 200
    assert again.json() == first.json()
    assert stored_key(served, leaked["id"]).revoked_at == revoked_at
    assert len(leak_events(served)) == 1


def test_keys_that_already_ended_or_are_honeytokens_are_false_positives_left_as_they_were(
    served: ServedApp, bob: Caller, github: GitHubSigner, secret_registry: SecretRegistry
) -> None:
    revoked = make_key(bob, secret_registry, name="revoked")
    assert bob.delete(f"/v1/api-keys/{revoked['id']}").status_code == 200
    expired = make_key(bob, secret_registry, name="expired", expiresIn="1h")
    with served.runtime.database.session() as session:
        session.get_one(ApiKey, expired["id"]).expires_at = datetime.now(UTC) - timedelta(minutes=1)
        session.commit()
    canary = make_key(bob, secret_registry, name="bait", isCanary=True)
    body = report(revoked["key"], expired["key"], canary["key"])

    answered = send(served, body, github.headers(body))

    assert answered.status_code == 200
    assert [t["label"] for t in answered.json()] == ["false_positive"] * 3
    assert stored_key(served, revoked["id"]).revoked_reason == "revoked"
    assert stored_key(served, expired["id"]).revoked_at is None
    assert stored_key(served, canary["id"]).revoked_at is None
    assert leak_events(served) == []


def test_a_key_in_its_rotation_grace_is_revoked_now(
    served: ServedApp, bob: Caller, github: GitHubSigner, secret_registry: SecretRegistry
) -> None:
    old = make_key(bob, secret_registry)
    rotated = bob.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": "24h"})
    assert rotated.status_code == 201
    secret_registry.add(rotated.json()["data"]["key"])
    assert bob.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 200
    graced = bob.get(f"/v1/api-keys/{old['id']}").json()["data"]
    assert (graced["status"], graced["revokedReason"]) == ("expiring", "rotated")
    body = report(old["key"])

    answered = send(served, body, github.headers(body))

    assert [t["label"] for t in answered.json()] == ["true_positive"]
    assert bob.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 401
    shown = bob.get(f"/v1/api-keys/{old['id']}").json()["data"]
    assert (shown["status"], shown["revokedReason"]) == ("revoked", "leaked")
    successor = rotated.json()["data"]["key"]
    assert bob.get("/v1/me", headers={"X-API-Key": successor}).status_code == 200


def refused_reasons(served: ServedApp) -> list[str | None]:
    served.runtime.flush()
    with served.runtime.database.session() as session:
        return [
            event.reason
            for event in session.query(AuditEvent).filter(
                AuditEvent.action == "secret_scanning.refused"
            )
        ]


def test_a_report_without_a_good_signature_revokes_nothing(
    served: ServedApp, bob: Caller, github: GitHubSigner, secret_registry: SecretRegistry
) -> None:
    leaked = make_key(bob, secret_registry)
    body = report(leaked["key"])
    impostor = GitHubSigner(github.identifier)  # GitHub's key id, someone else's key
    other_body = report(leaked["key"], url="https://example.com/elsewhere")
    attempts = {
        "unsigned": send(served, body, {"Content-Type": "application/json"}),
        "no signature": send(served, body, {"Github-Public-Key-Identifier": github.identifier}),
        "not base64": send(
            served,
            body,
            {**github.headers(body), "Github-Public-Key-Signature": "%%% not base64 %%%"},
        ),
        "another body's signature": send(served, body, github.headers(other_body)),
        "body changed after signing": send(
            served, body.replace(b"content", b"commit!"), github.headers(body)
        ),
        "someone else's key": send(served, body, impostor.headers(body)),
        "unknown key id": send(
            served, body, {**github.headers(body), "Github-Public-Key-Identifier": "f" * 64}
        ),
        "garbage signature": send(
            served,
            body,
            {
                **github.headers(body),
                "Github-Public-Key-Signature": base64.b64encode(b"x" * 70).decode(),
            },
        ),
    }
    statuses = {name: response.status_code for name, response in attempts.items()}
    assert statuses == {
        "unsigned": 400,
        "no signature": 400,
        "not base64": 400,
        "another body's signature": 401,
        "body changed after signing": 401,
        "someone else's key": 401,
        "unknown key id": 401,
        "garbage signature": 401,
    }
    for response in attempts.values():
        error = response.json()["error"]
        assert set(error) == {"code", "message", "requestId"}
        assert error["code"] in {"invalid_request", "unauthorized"}
    assert "Github-Public-Key-Signature" in attempts["unsigned"].json()["error"]["message"]
    assert bob.get("/v1/me", headers={"X-API-Key": leaked["key"]}).status_code == 200
    assert stored_key(served, leaked["id"]).revoked_at is None
    assert leak_events(served) == []
    assert sorted(r or "" for r in refused_reasons(served)) == sorted(
        ["unsigned", "unsigned", "bad_signature"] + ["bad_signature"] * 5
    )


def test_a_signed_body_that_is_not_a_report_is_a_400(
    served: ServedApp, github: GitHubSigner
) -> None:
    for body in (b"not json", b'{"token": "x"}', b'[{"type": "no token"}]', b"[1, 2]"):
        answered = send(served, body, github.headers(body))
        assert answered.status_code == 400, body
        assert answered.json()["error"]["code"] == "invalid_request"
    empty = send(served, b"[]", github.headers(b"[]"))
    assert (empty.status_code, empty.json()) == (200, [])


def test_a_report_too_large_is_refused_before_it_is_read(
    served: ServedApp, github: GitHubSigner
) -> None:
    body = report(*["rt_live_" + "B" * 38] * (MAX_REPORT_BYTES // 100))
    assert len(body) > MAX_REPORT_BYTES
    answered = send(served, body, github.headers(body))
    assert answered.status_code == 413
    assert answered.json()["error"]["code"] == "payload_too_large"


def test_a_key_github_adds_to_its_keys_file_is_picked_up(
    served: ServedApp,
    bob: Caller,
    github: GitHubSigner,
    keys_file: Path,
    secret_registry: SecretRegistry,
) -> None:
    leaked = make_key(bob, secret_registry)
    body = report(leaked["key"])
    successor = GitHubSigner("b" * 64)
    assert send(served, body, successor.headers(body)).status_code == 401
    keys_file.write_text(document(github, successor))
    answered = send(served, body, successor.headers(body))
    assert answered.status_code == 200
    assert [t["label"] for t in answered.json()] == ["true_positive"]


def test_reports_are_rate_limited_per_address(
    tmp_path: Path,
    database_url: str | None,
    keys_file: Path,
    github: GitHubSigner,
    secret_registry: SecretRegistry,
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        github_secret_scanning_keys_file=keys_file,
        ip_rate_limit_per_minute=3,
        _env_file=None,
    )
    body = report("rt_live_" + "C" * 38)
    with serve(settings, secret_registry) as served:
        statuses = [send(served, body, github.headers(body)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = send(served, body, github.headers(body))
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1


class _KeysHandler(http.server.BaseHTTPRequestHandler):
    document = b""
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.document)))
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def github_api(github: GitHubSigner) -> Iterator[tuple[str, type[_KeysHandler]]]:
    """GitHub's public-keys document served over HTTP on this host."""
    handler = type("Keys", (_KeysHandler,), {"document": document(github).encode(), "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/meta/public_keys/secret_scanning", handler
    finally:
        server.shutdown()
        server.server_close()


def test_keys_are_fetched_from_the_url_once_and_forged_ids_do_not_refetch_them(
    tmp_path: Path,
    database_url: str | None,
    github: GitHubSigner,
    github_api: tuple[str, type[_KeysHandler]],
    secret_registry: SecretRegistry,
) -> None:
    url, handler = github_api
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        github_secret_scanning_keys_url=url,
        _env_file=None,
    )
    with serve(settings, secret_registry) as served:
        bob = served.caller("acme", "bob@example.com", "member")
        leaked = make_key(bob, secret_registry)
        body = report(leaked["key"])
        for forged in ("1" * 64, "2" * 64, "3" * 64):
            headers = {**github.headers(body), "Github-Public-Key-Identifier": forged}
            assert send(served, body, headers).status_code == 401
        answered = send(served, body, github.headers(body))
        assert [t["label"] for t in answered.json()] == ["true_positive"]
        assert send(served, body, github.headers(body)).status_code == 200
    # One fetch for all of it: unknown ids refetch at most once per refresh interval.
    assert handler.requests == ["/meta/public_keys/secret_scanning"]


def test_when_the_keys_cannot_be_loaded_github_is_told_to_retry(
    tmp_path: Path,
    database_url: str | None,
    github: GitHubSigner,
    secret_registry: SecretRegistry,
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        github_secret_scanning_keys_url="http://127.0.0.1:9/unreachable",
        _env_file=None,
    )
    body = report("rt_live_" + "D" * 38)
    with serve(settings, secret_registry) as served:
        answered = send(served, body, github.headers(body))
    assert answered.status_code == 503
    assert answered.json()["error"]["code"] == "service_unavailable"
