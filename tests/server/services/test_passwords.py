"""One password rule: Argon2id hashes, a length rule, and no match without a stored hash."""

from __future__ import annotations

import pytest

from runtools.server.domain.errors import InvalidRequest
from runtools.server.services.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    dummy_hash,
    hash_password,
    password_matches,
)

PASSWORD = "correct horse battery staple"


def test_a_hashed_password_matches_itself_only_and_is_never_stored_as_typed() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert password_matches(stored, PASSWORD)
    assert not password_matches(stored, PASSWORD.upper())
    assert hash_password(PASSWORD) != stored  # salted


@pytest.mark.parametrize("length", [MIN_LENGTH - 1, MAX_LENGTH + 1])
def test_passwords_outside_the_length_rule_are_refused(length: int) -> None:
    with pytest.raises(InvalidRequest, match=f"{MIN_LENGTH}-{MAX_LENGTH} characters"):
        hash_password("x" * length)


@pytest.mark.parametrize("stored", [None, "", "not a hash"])
def test_nothing_matches_a_missing_empty_or_broken_stored_hash(stored: str | None) -> None:
    assert not password_matches(stored, PASSWORD)
    assert not password_matches(stored, "")


def test_the_dummy_hash_is_made_once_with_the_same_parameters() -> None:
    # Checked against when there is no stored hash: it must cost what a real one does.
    assert dummy_hash() is dummy_hash()
    assert dummy_hash().split("$")[:4] == hash_password(PASSWORD).split("$")[:4]
