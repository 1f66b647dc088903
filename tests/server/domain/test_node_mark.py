"""The node mark: only a node holding the secret can make one, for one request, briefly."""

from __future__ import annotations

import pytest

from runtools.server.domain.node_mark import MAX_AGE_SECONDS, BadMark, NodeMark, seal, unseal

SECRET = b"s" * 32
MARK = NodeMark(
    node="n1",
    issued_at=1_000_000.0,
    method="POST",
    target="/v1/sandboxes/sandbox-1/exec",
    request_id="req_abc",
    ip="203.0.113.7",
    placed=None,
)


def test_a_mark_opens_for_the_request_it_was_made_for() -> None:
    sealed = seal(MARK, SECRET)
    assert unseal(sealed, SECRET, method="POST", target=MARK.target, now=1_000_010.0) == MARK


@pytest.mark.parametrize(
    ("secret", "method", "target", "now"),
    [
        (b"t" * 32, "POST", MARK.target, 1_000_000.0),  # another secret
        (SECRET, "DELETE", MARK.target, 1_000_000.0),  # another method
        (SECRET, "POST", "/v1/sandboxes/sandbox-2/exec", 1_000_000.0),  # another sandbox
        (SECRET, "POST", MARK.target + "?x=1", 1_000_000.0),  # another query
        (SECRET, "POST", MARK.target, 1_000_000.0 + MAX_AGE_SECONDS + 1),  # stale
    ],
)
def test_a_mark_is_refused_for_anything_else(
    secret: bytes, method: str, target: str, now: float
) -> None:
    with pytest.raises(BadMark):
        unseal(seal(MARK, SECRET), secret, method=method, target=target, now=now)


@pytest.mark.parametrize("value", ["", "v1", "v1..", "v2.e30.x", "v1.e30.x", "v1.!!!.abc"])
def test_malformed_marks_are_refused(value: str) -> None:
    with pytest.raises(BadMark):
        unseal(value, SECRET, method="POST", target=MARK.target, now=1_000_000.0)


def test_changed_claims_break_the_signature() -> None:
    version, _, signature = seal(MARK, SECRET).split(".")
    forged = seal(NodeMark(**{**MARK.__dict__, "ip": "198.51.100.1"}), b"x" * 32)
    with pytest.raises(BadMark):
        unseal(
            f"{version}.{forged.split('.')[1]}.{signature}",
            SECRET,
            method="POST",
            target=MARK.target,
            now=1_000_000.0,
        )
