"""Sessions as stored: of callers racing on one row, exactly one wins each conditional write."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session

from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from runtools.server.store.models import RefreshToken, UserSession
from runtools.server.store.repositories import sessions
from support.tenants import Member

RACERS = 6


def _session_with_token(runtime: Runtime, member: Member, clock: FrozenClock) -> tuple[str, str]:
    now = clock.now()
    with runtime.database.session() as session:
        row = sessions.create(
            session,
            user_id=member.user_id,
            org_id=member.org_id,
            client_name="cli",
            ip=None,
            user_agent=None,
            now=now,
            expires_at=now + timedelta(days=1),
        )
        sessions.add_refresh_token(
            session, session_id=row.id, token_hash="a" * 64, now=now, expires_at=row.expires_at
        )
        token = sessions.refresh_token(session, "a" * 64)
        assert token is not None
        assert token.used_at is None
        session.commit()
        return row.id, token.id


def _race(runtime: Runtime, write: Callable[[Session], bool]) -> list[bool]:
    """Each racer writes in a transaction of its own, all at once, and commits."""
    barrier = threading.Barrier(RACERS)
    outcomes: list[bool] = []

    def racer() -> None:
        with runtime.database.session() as session:
            barrier.wait()
            outcomes.append(write(session))
            session.commit()

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_a_refresh_token_is_claimed_by_exactly_one_of_racing_callers(
    runtime: Runtime, admin: Member, clock: FrozenClock
) -> None:
    _, token_id = _session_with_token(runtime, admin, clock)
    outcomes = _race(
        runtime, lambda session: sessions.claim_refresh_token(session, token_id, clock.now())
    )
    assert sorted(outcomes) == [False] * (RACERS - 1) + [True]
    with runtime.database.session() as session:
        assert session.get_one(RefreshToken, token_id).used_at is not None
    # Used is used: a later claim loses too.
    with runtime.database.session() as session:
        assert not sessions.claim_refresh_token(session, token_id, clock.now())


def test_a_session_is_ended_by_exactly_one_of_racing_callers_with_its_reason(
    runtime: Runtime, admin: Member, clock: FrozenClock
) -> None:
    session_id, _ = _session_with_token(runtime, admin, clock)
    outcomes = _race(
        runtime,
        lambda session: sessions.end_if_live(session, session_id, clock.now(), "switched_org"),
    )
    assert sorted(outcomes) == [False] * (RACERS - 1) + [True]
    with runtime.database.session() as session:
        row = session.get_one(UserSession, session_id)
        assert row.revoked_at is not None
        assert row.revoke_reason == "switched_org"
        assert not sessions.end_if_live(session, session_id, clock.now(), "revoked_by_user")
        session.commit()
    with runtime.database.session() as session:
        assert session.get_one(UserSession, session_id).revoke_reason == "switched_org"


def test_listing_live_sessions_leaves_out_the_revoked_the_expired_and_other_users(
    runtime: Runtime, admin: Member, member: Member, clock: FrozenClock
) -> None:
    live, _ = _session_with_token(runtime, admin, clock)
    now = clock.now()
    with runtime.database.session() as session:
        revoked = sessions.create(
            session, user_id=admin.user_id, org_id=admin.org_id, client_name="web", ip=None,
            user_agent=None, now=now, expires_at=now + timedelta(days=1),
        )  # fmt: skip
        sessions.end_if_live(session, revoked.id, now, "revoked_by_user")
        expired = sessions.create(
            session, user_id=admin.user_id, org_id=admin.org_id, client_name="web", ip=None,
            user_agent=None, now=now - timedelta(days=2), expires_at=now,
        )  # fmt: skip
        theirs = sessions.create(
            session, user_id=member.user_id, org_id=member.org_id, client_name="web", ip=None,
            user_agent=None, now=now, expires_at=now + timedelta(days=1),
        )  # fmt: skip
        session.commit()
    with runtime.database.session() as session:
        page = sessions.live_of_user(session, admin.user_id, now, limit=10, cursor=None)
        assert [row.id for row in page.items] == [live]
        # Revoking "the others" ignores expiry but not revocation, nor another's sessions.
        others = sessions.unrevoked_of_user(session, admin.user_id, except_id=live)
        assert [row.id for row in others] == [expired.id]
        assert theirs.id not in {row.id for row in others}
