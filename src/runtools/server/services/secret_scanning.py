"""Leaked keys: GitHub's secret scanning reports, verified, and each live key revoked at once.

A report is authenticated by its signature alone (GitHub calls unauthenticated):
``Github-Public-Key-Signature`` is a base64 DER ECDSA P-256 signature over the
raw body, made with the key named by ``Github-Public-Key-Identifier`` in
GitHub's public-keys document. That document is fetched and cached
(``GitHubKeys``); an unknown identifier refetches it, at most once per
``github_secret_scanning_keys_refresh_seconds``, so forged identifiers cannot
make us hammer GitHub. For self-hosting or an offline node it is read from a
file instead, re-read when the file changes.

Nothing is revoked unless the signature verifies. A reported key of ours that
is live (not revoked, not expired; a rotation's grace ends now) is revoked in
one conditional update (``revokedReason: leaked``), audited in its
organization with the URL and source GitHub gave, and dropped from every
node's cache. A key already revoked as leaked is answered ``true_positive``
again and changes nothing, so a replayed report is harmless; everything else
(not ours, malformed, revoked or expired before, a honeytoken) is a
``false_positive``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import InvalidRequest, ServiceUnavailable, Unauthorized
from runtools.server.domain.events import CredentialEvent, EventBus, EventKind
from runtools.server.domain.keys import hash_key, is_well_formed
from runtools.server.domain.secret_scanning import (
    FALSE_POSITIVE,
    LEAKED,
    TRUE_POSITIVE,
    ReportedToken,
    parse_report,
)
from runtools.server.store.database import Database
from runtools.server.store.models import ApiKey
from runtools.server.store.repositories import api_keys, audit
from runtools.server.store.repositories.audit import AuditWriter

if TYPE_CHECKING:
    from runtools.server.store.database import Session

logger = logging.getLogger("runtools.secret_scanning")

#: The actor of what a report does, in the audit log.
ACTOR = "secret_scanning"
#: A cached keys document older than this is fetched again (GitHub rotates its keys).
MAX_KEYS_AGE_SECONDS = 3600.0
#: Longest key identifier accepted (GitHub's are 64 hex characters).
MAX_IDENTIFIER = 256
#: Longest signature header accepted (a DER P-256 signature is at most 72 bytes).
MAX_SIGNATURE = 512


class GitHubKeys:
    """GitHub's secret-scanning public keys by identifier: fetched and cached, or from a file."""

    def __init__(
        self,
        *,
        url: str,
        file: Path | None = None,
        refresh_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._file = file
        self._refresh = refresh_seconds
        self._monotonic = monotonic
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at: float | None = None
        self._file_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def verify(self, identifier: str, signature: bytes, body: bytes) -> bool:
        """True if ``signature`` over ``body`` verifies with GitHub's key ``identifier``."""
        key = self._key(identifier)
        if key is None:
            return False
        try:
            key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def _key(self, identifier: str) -> ec.EllipticCurvePublicKey | None:
        with self._lock:
            if self._file is not None:
                self._read_file_if_changed()
            else:
                now = self._monotonic()
                age = None if self._fetched_at is None else now - self._fetched_at
                stale = age is None or age >= MAX_KEYS_AGE_SECONDS
                unknown = identifier not in self._keys
                if stale or (unknown and age is not None and age >= self._refresh):
                    self._fetch(now)
            if not self._keys:
                # Nothing to check a report against: GitHub retries a 5xx later.
                raise ServiceUnavailable(
                    "GitHub's secret scanning keys could not be loaded; try again later"
                )
            return self._keys.get(identifier)

    def _fetch(self, now: float) -> None:
        self._fetched_at = now
        self.fetches += 1
        try:
            response = httpx.get(
                self._url,
                timeout=10.0,
                follow_redirects=False,
                headers={"Accept": "application/json"},
            )
            response.raise_for_status()
            keys = keys_of(response.content)
        except (httpx.HTTPError, ValueError) as exc:
            # Keep the keys we have: a briefly unreachable GitHub breaks nothing.
            logger.warning("GitHub's secret scanning keys could not be fetched: %s", exc)
            return
        self._keys = keys

    def _read_file_if_changed(self) -> None:
        assert self._file is not None
        try:
            stat = self._file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._file_stamp:
                return
            keys = keys_of(self._file.read_bytes())
        except (OSError, ValueError) as exc:
            logger.warning("secret scanning keys file %s could not be read: %s", self._file, exc)
            return
        self._keys, self._file_stamp = keys, stamp
        self.fetches += 1


def keys_of(document: bytes) -> dict[str, ec.EllipticCurvePublicKey]:
    """The P-256 keys of a ``{"public_keys": [{"key_identifier", "key"}]}`` document.

    Entries that are not a PEM P-256 public key are skipped; a document that is
    not of this shape at all is a ``ValueError``.
    """
    parsed = json.loads(document)
    entries = parsed.get("public_keys") if isinstance(parsed, dict) else None
    if not isinstance(entries, list):
        raise ValueError('the keys document has no "public_keys" list')
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        identifier, pem = entry.get("key_identifier"), entry.get("key")
        if not isinstance(identifier, str) or not isinstance(pem, str):
            continue
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except ValueError:
            continue
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            keys[identifier] = key
    return keys


@dataclass(frozen=True)
class Label:
    """Our answer about one reported token, in GitHub's partner format."""

    token_raw: str
    token_type: str
    label: str


def _signature(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("Github-Public-Key-Signature must be base64") from exc


class SecretScanningService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        bus: EventBus,
        keys: GitHubKeys,
        failures: AuditWriter,
    ) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus
        self._keys = keys
        self._failures = failures

    def report(
        self,
        body: bytes,
        *,
        key_identifier: str | None,
        signature: str | None,
        context: RequestContext,
    ) -> list[Label]:
        """Verify a GitHub report, revoke every live key of ours in it, and label each token."""
        if not key_identifier or not signature:
            self._refused("unsigned", context)
            raise InvalidRequest(
                "A secret scanning report is signed: send Github-Public-Key-Identifier "
                "and Github-Public-Key-Signature"
            )
        try:
            if len(key_identifier) > MAX_IDENTIFIER or len(signature) > MAX_SIGNATURE:
                raise InvalidRequest("Github-Public-Key-Identifier or -Signature is too long")
            signed = _signature(signature)
        except InvalidRequest:
            self._refused("bad_signature", context)
            raise
        if not self._keys.verify(key_identifier, signed, body):
            self._refused("bad_signature", context)
            raise Unauthorized()
        reported = parse_report(body)
        revoked: list[ApiKey] = []
        with self._database.session() as session:
            labels = [
                Label(
                    token_raw=token.token,
                    token_type=token.type,
                    label=self._judge(session, token, key_identifier, context, revoked),
                )
                for token in reported
            ]
            session.commit()
        for key in revoked:
            self._bus.publish(CredentialEvent(EventKind.KEY_REVOKED, key.org_id, key_id=key.id))
        return labels

    def _judge(
        self,
        session: Session,
        token: ReportedToken,
        key_identifier: str,
        context: RequestContext,
        revoked: list[ApiKey],
    ) -> str:
        if not is_well_formed(token.token):
            return FALSE_POSITIVE
        key = api_keys.find_by_hash(session, hash_key(token.token))
        if key is None or key.is_canary:
            # A honeytoken may be planted in public on purpose; only its use is an alarm.
            return FALSE_POSITIVE
        now = self._clock.now()
        if api_keys.revoke_if_live(session, key.id, now, LEAKED):
            session.refresh(key)
            revoked.append(key)
            audit.record(
                session,
                AuditRecord(
                    action="api_key.revoked",
                    outcome="success",
                    reason=LEAKED,
                    org_id=key.org_id,
                    actor_type=ACTOR,
                    actor_id=None,
                    context=context,
                    target_type="api_key",
                    target_id=key.id,
                    details={
                        "name": key.name,
                        "keyPrefix": key.key_prefix,
                        "scopes": list(key.scopes),
                        "ownerUserId": key.owner_user_id,
                        "reporter": "github",
                        "publicKeyIdentifier": key_identifier,
                        "tokenType": token.type,
                        "url": token.url,
                        "source": token.source,
                    },
                ),
                now,
            )
            return TRUE_POSITIVE
        session.refresh(key)
        revoked_at = as_utc(key.revoked_at) if key.revoked_at is not None else None
        if key.revoked_reason == LEAKED and revoked_at is not None and revoked_at <= now:
            return TRUE_POSITIVE  # reported (and revoked) before: nothing more to do
        return FALSE_POSITIVE

    def _refused(self, reason: str, context: RequestContext) -> None:
        self._failures.enqueue(
            AuditRecord(
                action="secret_scanning.refused",
                outcome="failure",
                reason=reason,
                org_id=None,
                actor_type=ACTOR,
                actor_id=None,
                context=context,
            )
        )
