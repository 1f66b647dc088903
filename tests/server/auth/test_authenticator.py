"""The authenticator's fast path vouches for cached, valid credentials only.

``Authenticator.cached`` answers most requests without the full path; these
tests pin that it never accepts what ``authenticate`` would refuse, and that
a refusal still reaches the full path, which audits it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from runtools.server.clock import FrozenClock
from runtools.server.runtime import Runtime
from runtools.server.store.models import AuditEvent
from support.tenants import Member


def _warm(admin: Member, key: str) -> None:
    assert admin.http.get("/v1/me", headers={"X-API-Key": key}).status_code == 200


def test_a_cached_key_is_vouched_for_in_its_usual_forms(admin: Member, runtime: Runtime) -> None:
    _warm(admin, admin.key)
    key = admin.key.encode()
    for headers in (
        [(b"host", b"x"), (b"x-api-key", key)],
        [(b"authorization", b"Bearer " + key)],
        [(b"x-api-key", key), (b"user-agent", b"probe")],
    ):
        principal = runtime.authenticator.cached(headers)
        assert principal is not None and principal.credential_id == admin.key_id


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"x-api-key", b" KEY")],  # not the exact bytes that were verified
        [(b"x-api-key", b"Bearer KEY")],
        [(b"authorization", b"bearer KEY")],  # the full path parses other spellings
        [(b"authorization", b"Basic Zm9vOmJhcg==")],
        [(b"x-api-key", b"KEY"), (b"x-api-key", b"KEY")],
        [(b"x-api-key", b"KEY"), (b"authorization", b"Bearer KEY")],
        [(b"x-api-key", b"KEY"), (b"accept", b"text/plain"), (b"accept", b"*/*")],
    ],
)
def test_anything_unusual_is_left_to_the_full_path(
    admin: Member, runtime: Runtime, headers: list[tuple[bytes, bytes]]
) -> None:
    _warm(admin, admin.key)
    key = admin.key.encode()
    presented = [(name, value.replace(b"KEY", key)) for name, value in headers]
    assert runtime.authenticator.cached(presented) is None


@pytest.mark.parametrize(
    "headers",
    [
        [("X-API-Key", "KEY"), ("X-API-Key", "KEY")],
        [("X-API-Key", "KEY"), ("X-API-Key", "rt_live_other")],
        [("Authorization", "Bearer KEY"), ("Authorization", "Bearer KEY")],
    ],
)
def test_a_repeated_credential_header_is_a_400_not_a_pick(
    admin: Member, headers: list[tuple[str, str]]
) -> None:
    _warm(admin, admin.key)
    sent = [(name, value.replace("KEY", admin.key)) for name, value in headers]
    response = admin.http.get("/v1/me", headers=sent)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "one credential" in error["message"]
    assert admin.key not in response.text


def test_a_revoked_key_is_refused_at_once_though_it_was_cached(
    admin: Member, runtime: Runtime, secret_registry: Any
) -> None:
    doomed = admin.create_key(secret_registry, name="doomed")
    _warm(admin, doomed["key"])
    assert runtime.authenticator.cached([(b"x-api-key", doomed["key"].encode())]) is not None
    assert admin.delete(f"/v1/api-keys/{doomed['id']}").status_code == 200
    assert runtime.authenticator.cached([(b"x-api-key", doomed["key"].encode())]) is None
    assert admin.http.get("/v1/me", headers={"X-API-Key": doomed["key"]}).status_code == 401


def test_a_cached_key_stops_at_its_expiry_and_the_refusal_is_audited(
    admin: Member, runtime: Runtime, secret_registry: Any, clock: FrozenClock
) -> None:
    expiring = admin.create_key(secret_registry, name="expiring", expiresIn="1h")
    _warm(admin, expiring["key"])
    clock.advance(timedelta(minutes=61))
    assert runtime.authenticator.cached([(b"x-api-key", expiring["key"].encode())]) is None
    assert admin.http.get("/v1/me", headers={"X-API-Key": expiring["key"]}).status_code == 401
    runtime.flush()
    with runtime.database.session() as session:
        reasons = session.scalars(
            select(AuditEvent.reason).where(AuditEvent.target_id == expiring["id"])
        ).all()
    assert "expired" in reasons


def test_a_rotated_key_stops_at_the_end_of_its_grace_though_it_was_cached(
    admin: Member, secret_registry: Any, clock: FrozenClock
) -> None:
    old = admin.create_key(secret_registry, name="old")
    _warm(admin, old["key"])
    rotated = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": "1h"})
    secret_registry.add(rotated.json()["data"]["key"])
    clock.advance(timedelta(minutes=59))
    assert admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 200
    clock.advance(timedelta(minutes=2))
    assert admin.http.get("/v1/me", headers={"X-API-Key": old["key"]}).status_code == 401


def test_a_key_whose_owner_left_is_refused_from_its_cache_entry_without_noting_a_use(
    member: Member, runtime: Runtime, clock: FrozenClock
) -> None:
    from sqlalchemy import delete

    from runtools.server.events import CredentialEvent, EventKind
    from runtools.server.store.models import ApiKey, Membership

    _warm(member, member.key)
    runtime.flush()
    with runtime.database.session() as session:
        session.execute(delete(Membership).where(Membership.user_id == member.user_id))
        session.execute(update(ApiKey).where(ApiKey.id == member.key_id).values(last_used_at=None))
        session.commit()
    runtime.bus.publish(
        CredentialEvent(EventKind.MEMBER_CHANGED, member.org_id, user_id=member.user_id)
    )
    clock.advance(timedelta(minutes=2))  # a use now would be a new lastUsedAt
    # The first refusal caches what the store said; the second is answered from that entry.
    for _ in range(2):
        assert member.http.get("/v1/me", headers={"X-API-Key": member.key}).status_code == 401
        assert runtime.authenticator.cached([(b"x-api-key", member.key.encode())]) is None
    runtime.flush()
    with runtime.database.session() as session:
        used = session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == member.key_id))
        reasons = session.scalars(
            select(AuditEvent.reason).where(AuditEvent.target_id == member.key_id)
        ).all()
    assert used is None
    assert reasons.count("owner_removed") == 2
