"""The idempotency service's rules, on the real store with a frozen clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from runtools.server.domain.clock import FrozenClock
from runtools.server.domain.errors import Conflict, IdempotencyKeyReused, InvalidRequest
from runtools.server.runtime import Runtime
from runtools.server.services.idempotency import (
    IN_FLIGHT_LEASE,
    Claim,
    IdempotencyService,
    StoredResponse,
)
from runtools.server.services.response_seal import SealBroken, seal, unseal
from runtools.server.store.models import IdempotencyRecord

BODY = b'{"data": {"key": "rt_live_pretend"}}'


@pytest.fixture
def service(runtime: Runtime) -> IdempotencyService:
    return runtime.idempotency


def test_a_concurrent_duplicate_is_told_to_retry(service: IdempotencyService) -> None:
    claim = service.claim("key_a", "k1", "req-hash")
    assert isinstance(claim, Claim)
    with pytest.raises(Conflict, match="still in progress"):
        service.claim("key_a", "k1", "req-hash")
    service.complete(claim, StoredResponse(201, BODY))
    assert service.claim("key_a", "k1", "req-hash") == StoredResponse(201, BODY)


def test_an_abandoned_first_call_is_taken_over_after_the_lease(
    service: IdempotencyService, clock: FrozenClock
) -> None:
    assert isinstance(service.claim("key_a", "k1", "h"), Claim)
    clock.advance(IN_FLIGHT_LEASE)
    assert isinstance(service.claim("key_a", "k1", "h"), Claim)
    with pytest.raises(Conflict):
        service.claim("key_a", "k1", "h")


def test_a_different_request_under_the_same_key_is_refused(service: IdempotencyService) -> None:
    claim = service.claim("key_a", "k1", "h1")
    assert isinstance(claim, Claim)
    service.complete(claim, StoredResponse(201, BODY))
    with pytest.raises(IdempotencyKeyReused):
        service.claim("key_a", "k1", "h2")


def test_the_store_holds_neither_the_key_nor_the_response(
    service: IdempotencyService, runtime: Runtime
) -> None:
    claim = service.claim("key_a", "a-very-particular-key", "h")
    assert isinstance(claim, Claim)
    service.complete(claim, StoredResponse(201, BODY))
    with runtime.database.session() as session:
        row = session.scalars(select(IdempotencyRecord)).one()
    stored = repr(
        (row.lookup_hash, row.request_hash, row.state, row.response_status, row.sealed_response)
    )
    assert "a-very-particular-key" not in stored
    assert "rt_live_pretend" not in stored
    assert "a-very-particular-key" not in repr(claim)


def test_keys_must_be_printable_ascii(service: IdempotencyService) -> None:
    for bad in ["", "a b", "x" * 256, "tab\there"]:
        with pytest.raises(InvalidRequest):
            service.claim("key_a", bad, "h")


def test_a_seal_opens_only_with_its_key_secret_and_record() -> None:
    sealed = seal("k1", b"secret", "lookup", BODY)
    assert unseal("k1", b"secret", "lookup", sealed) == BODY
    for key, secret, lookup in [
        ("k2", b"secret", "lookup"),
        ("k1", b"other", "lookup"),
        ("k1", b"secret", "elsewhere"),
    ]:
        with pytest.raises(SealBroken):
            unseal(key, secret, lookup, sealed)


def test_expired_records_are_purged(
    service: IdempotencyService, runtime: Runtime, clock: FrozenClock
) -> None:
    claim = service.claim("key_a", "k1", "h")
    assert isinstance(claim, Claim)
    service.complete(claim, StoredResponse(201, BODY))
    clock.advance(timedelta(days=1))
    assert isinstance(service.claim("key_b", "k2", "h"), Claim)
    with runtime.database.session() as session:
        assert (
            session.scalar(
                select(IdempotencyRecord).where(IdempotencyRecord.lookup_hash == claim.lookup_hash)
            )
            is None
        )
