"""A key's term: its status, the reason it is refused and the steady path's ``ends`` agree."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from runtools.server.domain.key_term import KeyTerm, ends_at

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

#: Times within a few hours of noon, to the second: boundaries are hit often.
times = st.integers(min_value=-4 * 3600, max_value=4 * 3600).map(
    lambda s: NOON + timedelta(seconds=s)
)
terms = st.builds(KeyTerm, st.none() | times, st.none() | times, st.booleans(), st.booleans())


@given(terms, times)
def test_the_steady_paths_end_refuses_exactly_when_the_full_path_does(
    term: KeyTerm, now: datetime
) -> None:
    assert (term.refusal(now) is not None) == (term.ends <= now.timestamp())


@given(terms, times)
def test_the_status_names_the_refusal_exactly_when_the_key_is_refused(
    term: KeyTerm, now: datetime
) -> None:
    status = term.status(now)
    refusal = term.refusal(now)
    if refusal is not None:
        assert status == refusal
    else:
        assert status in {"active", "expiring"}


@given(terms, times)
def test_a_working_key_with_a_revocation_ahead_is_expiring(term: KeyTerm, now: datetime) -> None:
    if term.refusal(now) is None:
        assert term.status(now) == ("expiring" if term.revoked_at is not None else "active")


def test_a_key_ends_at_its_expiry_or_its_revocation_whichever_is_first() -> None:
    assert ends_at(None, None) is None
    assert ends_at(NOON, None) == NOON
    assert ends_at(None, NOON) == NOON
    assert ends_at(NOON + HOUR, NOON) == NOON
    assert KeyTerm(NOON, NOON + HOUR).ends == NOON.timestamp()
    assert KeyTerm(None, None).ends == math.inf


def test_a_key_whose_owner_left_is_refused_at_once_and_says_why() -> None:
    term = KeyTerm(None, None, owner_is_member=False)
    assert term.ends == -math.inf
    assert term.refusal(NOON) == "owner_removed"
    assert term.status(NOON) == "owner_removed"
    # Had it ended by itself, that is what it says.
    assert KeyTerm(NOON - HOUR, None, owner_is_member=False).status(NOON) == "expired"


def test_revoked_is_the_reason_when_both_the_expiry_and_the_revocation_have_passed() -> None:
    term = KeyTerm(NOON - HOUR, NOON - 2 * HOUR)
    assert term.refusal(NOON) == "revoked"
    assert term.status(NOON) == "revoked"


def test_a_key_that_expires_within_its_rotation_grace_is_expired_from_its_expiry() -> None:
    term = KeyTerm(expires_at=NOON, revoked_at=NOON + 24 * HOUR)
    assert term.status(NOON - HOUR) == "expiring"
    assert term.status(NOON) == "expired"
    assert term.refusal(NOON) == "expired"


def test_a_canary_never_works_and_says_so_until_it_ends() -> None:
    term = KeyTerm(NOON + HOUR, None, is_canary=True)
    assert term.ends == -math.inf
    assert term.refusal(NOON) == term.status(NOON) == "canary"
    assert term.refusal(NOON + 2 * HOUR) == "expired"
    assert KeyTerm(None, NOON, is_canary=True).status(NOON) == "revoked"
    assert KeyTerm(None, None, owner_is_member=False, is_canary=True).status(NOON) == "canary"
