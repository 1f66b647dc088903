"""Throttled guesses are counted in the database: every node and worker sees the same count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from runtools.server.auth.throttle import Throttle
from runtools.server.clock import FrozenClock
from runtools.server.errors import RateLimited
from runtools.server.runtime import Runtime, build_runtime
from runtools.server.settings import Settings
from runtools.server.store.models import AuthFailure

WINDOW = 900.0


@pytest.fixture
def other_node(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    """A second runtime on the same database: another node, or another worker."""
    node = build_runtime(settings, clock)
    yield node
    node.close()


def _throttle(runtime: Runtime, clock: FrozenClock, name: str = "sign-in:account") -> Throttle:
    return Throttle(database=runtime.database, clock=clock, name=name, limit=5, window=WINDOW)


def test_failures_on_every_node_count_together(
    runtime: Runtime, other_node: Runtime, clock: FrozenClock
) -> None:
    here, there = _throttle(runtime, clock), _throttle(other_node, clock)
    for throttle in (here, there, here, there):
        throttle.check("ada@example.com", "Too many failed sign-ins")
        throttle.failed("ada@example.com")
    clock.advance(timedelta(seconds=100))
    there.failed("ada@example.com")  # the fifth, on the other node
    for throttle in (here, there):
        with pytest.raises(RateLimited) as refused:
            throttle.check("ada@example.com", "Too many failed sign-ins")
        # The oldest failure leaves the window 800 s from now.
        assert refused.value.retry_after == 801
        assert str(refused.value) == "Too many failed sign-ins; retry in 801s"
    here.check("bob@example.com", "Too many failed sign-ins")  # others are not affected
    clock.advance(timedelta(seconds=801))
    here.check("ada@example.com", "Too many failed sign-ins")  # four failures left it


def test_a_reset_and_the_window_forget_failures_and_nothing_typed_is_stored(
    runtime: Runtime, clock: FrozenClock
) -> None:
    accounts, addresses = _throttle(runtime, clock), _throttle(runtime, clock, "sign-in:ip")
    for _ in range(5):
        accounts.failed("ada@example.com")
        addresses.failed("203.0.113.7")
    accounts.reset("ada@example.com")  # a correct password
    accounts.check("ada@example.com", "Too many failed sign-ins")
    with pytest.raises(RateLimited):
        addresses.check("203.0.113.7", "Too many failed sign-ins")
    with runtime.database.session() as session:
        rows = session.scalars(select(AuthFailure)).all()
        assert {r.throttle for r in rows} == {"sign-in:ip"} and len(rows) == 5
        stored = " ".join(f"{r.throttle} {r.subject}" for r in rows)
    assert "203.0.113.7" not in stored and "ada@" not in stored
    # Past the window, the next failure of any subject clears the throttle's old rows.
    clock.advance(timedelta(seconds=WINDOW + 1))
    addresses.failed("198.51.100.1")
    with runtime.database.session() as session:
        assert len(session.scalars(select(AuthFailure)).all()) == 1
