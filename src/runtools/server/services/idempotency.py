"""Idempotent creates: a retried call with the same ``Idempotency-Key`` gets the first answer.

Usage, by any create endpoint (API keys today, sandboxes tomorrow)::

    outcome = service.claim(principal.credential_id, key, request_hash)
    if isinstance(outcome, StoredResponse):
        return outcome                    # a retry: the first answer, replayed
    try:
        response = do_the_create()
    except BaseException:
        service.release(outcome)          # failed: a retry may run it again
        raise
    service.complete(outcome, response)

Rules:
- a key is scoped to the credential that sent it; records live 24 hours;
- the same key with a different request (method, path or body) is refused
  (422 ``idempotency_key_reused``), never replayed;
- a key whose first call is still running is refused (409, retry shortly);
  a first call that died without finishing is taken over after a lease;
- the response is stored sealed (see ``response_seal``): the record's id is
  a hash of credential and key, and the key itself is never stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import Conflict, IdempotencyKeyReused, InvalidRequest
from runtools.server.services.response_seal import SealBroken, seal, unseal
from runtools.server.store.database import Database
from runtools.server.store.repositories import idempotency as records

RECORD_TTL = timedelta(hours=24)
#: How long a first call may run before a retry may assume it died and run again.
IN_FLIGHT_LEASE = timedelta(seconds=60)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes


@dataclass(frozen=True)
class Claim:
    """The right to run a call once; holds the key in memory only."""

    lookup_hash: str
    idempotency_key: str = field(repr=False)


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all("!" <= c <= "~" for c in key):
        raise InvalidRequest(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters, no spaces"
        )
    return key


def request_fingerprint(method: str, path: str, canonical_body: bytes) -> str:
    """What makes two calls "the same request"."""
    material = method.upper().encode() + b"\0" + path.encode() + b"\0" + canonical_body
    return hashlib.sha256(material).hexdigest()


def lookup_hash(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()


class IdempotencyService:
    def __init__(self, database: Database, clock: Clock, secret: bytes) -> None:
        self._database = database
        self._clock = clock
        self._secret = secret

    def claim(self, scope: str, key: str, request_hash: str) -> Claim | StoredResponse:
        """Start a call, or return the answer of the call this one repeats."""
        lookup = lookup_hash(scope, check_key(key))
        now = self._clock.now()
        with self._database.session() as session:
            records.purge_expired(session, now)
            session.commit()
            if records.insert_in_flight(session, lookup, request_hash, now, now + RECORD_TTL):
                session.commit()
                return Claim(lookup, key)
            record = records.find(session, lookup)
            if record is None:  # finished and released between our insert and read
                raise Conflict(_IN_FLIGHT_MESSAGE)
            if record.request_hash != request_hash:
                raise IdempotencyKeyReused()
            if record.state == records.IN_FLIGHT:
                if as_utc(record.created_at) + IN_FLIGHT_LEASE <= now:
                    taken = records.take_over(session, record, now)
                    session.commit()
                    if taken:
                        return Claim(lookup, key)
                raise Conflict(_IN_FLIGHT_MESSAGE)
            assert record.response_status is not None
            assert record.sealed_response is not None
            try:
                body = unseal(key, self._secret, lookup, record.sealed_response)
            except SealBroken as exc:  # only if the service secret changed
                raise Conflict("The earlier result of this Idempotency-Key is unreadable") from exc
            return StoredResponse(record.response_status, body)

    def complete(self, claim: Claim, response: StoredResponse) -> None:
        sealed = seal(claim.idempotency_key, self._secret, claim.lookup_hash, response.body)
        with self._database.session() as session:
            records.finish(session, claim.lookup_hash, response.status_code, sealed)
            session.commit()

    def release(self, claim: Claim) -> None:
        with self._database.session() as session:
            records.remove(session, claim.lookup_hash)
            session.commit()


_IN_FLIGHT_MESSAGE = (
    "A request with this Idempotency-Key is still in progress; retry in a few seconds"
)
