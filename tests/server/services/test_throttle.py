"""Guesses are counted in the database, before they are judged: every node sees the same count."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from runtools.server.domain.clock import FrozenClock
from runtools.server.domain.errors import Throttled
from runtools.server.runtime import Runtime, build_runtime
from runtools.server.services.throttle import Throttle
from runtools.server.settings import Settings
from runtools.server.store.models import AuthFailure

WINDOW = 900.0
KEY = b"k" * 32
WHAT = "Too many failed sign-ins"


@pytest.fixture
def other_node(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    """A second runtime on the same database: another node, or another worker."""
    node = build_runtime(settings, clock)
    yield node
    node.close()


def _throttle(runtime: Runtime, clock: FrozenClock, name: str = "sign-in:account") -> Throttle:
    return Throttle(
        database=runtime.database, clock=clock, key=KEY, name=name, limit=5, window=WINDOW
    )


def test_guesses_on_every_node_count_together(
    runtime: Runtime, other_node: Runtime, clock: FrozenClock
) -> None:
    here, there = _throttle(runtime, clock), _throttle(other_node, clock)
    for throttle in (here, there, here, there):
        throttle.admit("ada@example.com", WHAT)
    clock.advance(timedelta(seconds=100))
    there.admit("ada@example.com", WHAT)  # the fifth, on the other node
    for throttle in (here, there):
        with pytest.raises(Throttled) as refused:
            throttle.admit("ada@example.com", WHAT)
        # The oldest guess leaves the window 800 s from now.
        assert refused.value.retry_after == 801
        assert str(refused.value) == f"{WHAT}; retry in 801s"
    here.admit("bob@example.com", WHAT)  # others are not affected
    clock.advance(timedelta(seconds=801))
    here.admit("ada@example.com", WHAT)  # four left in the window: one more is allowed


def test_parallel_guesses_cannot_outrun_the_count(
    runtime: Runtime, other_node: Runtime, clock: FrozenClock
) -> None:
    # Counted before they are judged: guesses in flight at once still number five.
    throttles = [_throttle(runtime, clock), _throttle(other_node, clock)]
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def guess(i: int) -> None:
        barrier.wait()
        try:
            throttles[i % 2].admit("ada@example.com", WHAT)
            outcomes.append("admitted")
        except Throttled:
            outcomes.append("throttled")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["admitted"] * 5 + ["throttled"] * 7


def test_a_right_guess_and_a_reset_uncount_and_nothing_typed_is_stored(
    runtime: Runtime, clock: FrozenClock
) -> None:
    accounts, addresses = _throttle(runtime, clock), _throttle(runtime, clock, "sign-in:ip")
    for _ in range(4):
        accounts.admit("ada@example.com", WHAT)
        addresses.admit("203.0.113.7", WHAT)
    right = addresses.admit("203.0.113.7", WHAT)
    addresses.succeeded(right)  # a correct password: that guess no longer counts
    addresses.admit("203.0.113.7", WHAT)
    with pytest.raises(Throttled):
        addresses.admit("203.0.113.7", WHAT)
    accounts.reset("ada@example.com")
    accounts.admit("ada@example.com", WHAT)
    with runtime.database.session() as session:
        rows = session.scalars(select(AuthFailure)).all()
        stored = {r.subject for r in rows}
    assert len(rows) == 6
    # Keyed digests: hashing every address (or a list of emails) finds nothing.
    for plain in ("sign-in:ip:203.0.113.7", "sign-in:ip:ip:203.0.113.7", "203.0.113.7"):
        assert hashlib.sha256(plain.encode()).hexdigest() not in stored
    assert not any("203.0.113.7" in s or "ada@" in s for s in stored)
    # Past the window, the next guess clears the throttle's old rows.
    clock.advance(timedelta(seconds=WINDOW + 1))
    addresses.admit("198.51.100.1", WHAT)
    with runtime.database.session() as session:
        names = [r.throttle for r in session.scalars(select(AuthFailure)).all()]
    assert names.count("sign-in:ip") == 1
