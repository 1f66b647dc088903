"""Per-credential meters in one process: the counts and headers of ``admit_here``."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from runtools.server.domain.errors import RateLimited
from runtools.server.domain.principal import Principal
from runtools.server.ratelimit import policy
from runtools.server.ratelimit.counters import LocalCounter
from runtools.server.ratelimit.limiter import RateLimiter
from runtools.server.ratelimit.meters import Meters
from support.principals import principal

ADA = principal(rate_limit=3)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _headers(state: dict[str, Any]) -> dict[bytes, bytes]:
    return dict(state["rate_limit_headers"])


def _admit(limiter: RateLimiter, principal: Principal) -> dict[bytes, bytes]:
    state: dict[str, Any] = {}
    assert limiter.admit_here(principal, state)
    return _headers(state)


def test_each_request_is_counted_with_the_three_headers_then_refused() -> None:
    limiter = RateLimiter(LocalCounter(), address_limit=2, wall_clock=Clock(1_000_010.5))
    answers = [_admit(limiter, ADA) for _ in range(3)]
    assert [a[b"x-ratelimit-remaining"] for a in answers] == [b"2", b"1", b"0"]
    assert {a[b"x-ratelimit-limit"] for a in answers} == {b"3"}
    assert {a[b"x-ratelimit-reset"] for a in answers} == {b"1000020"}  # the next whole minute
    state: dict[str, Any] = {}
    with pytest.raises(RateLimited) as refused:
        limiter.admit_here(ADA, state)
    assert refused.value.retry_after == 10
    assert _headers(state)[b"x-ratelimit-remaining"] == b"0"


def test_a_new_window_starts_from_zero() -> None:
    clock = Clock(1_000_010.5)
    limiter = RateLimiter(LocalCounter(), address_limit=2, wall_clock=clock)
    for _ in range(3):
        _admit(limiter, ADA)
    clock.now = 1_000_020.0  # the window's end is the next one's start
    answer = _admit(limiter, ADA)
    assert answer[b"x-ratelimit-remaining"] == b"2"
    assert answer[b"x-ratelimit-reset"] == b"1000080"


def test_new_terms_mid_window_keep_the_count() -> None:
    limiter = RateLimiter(LocalCounter(), address_limit=2, wall_clock=Clock(1_000_010.5))
    _admit(limiter, ADA)
    _admit(limiter, ADA)
    # The key's limit raised: the authenticator hands over a new Principal.
    raised = _admit(limiter, replace(ADA, rate_limit=10))
    assert raised[b"x-ratelimit-limit"] == b"10"
    assert raised[b"x-ratelimit-remaining"] == b"7"  # the third request of the window


def test_credentials_are_counted_apart() -> None:
    limiter = RateLimiter(LocalCounter(), address_limit=2, wall_clock=Clock(1_000_010.5))
    for _ in range(3):
        _admit(limiter, ADA)
    other = replace(ADA, credential_id="key_2")
    session = replace(ADA, credential_type="session")  # same id, another kind
    assert _admit(limiter, other)[b"x-ratelimit-remaining"] == b"2"
    assert _admit(limiter, session)[b"x-ratelimit-remaining"] == b"2"


def test_a_late_request_of_the_last_window_leaves_the_new_one_alone() -> None:
    meters = Meters()
    current = meters.open(ADA, 1_000_030.0)
    next(current.counts)
    late = meters.open(replace(ADA), 1_000_019.9)  # a thread that read the clock earlier
    assert late is current
    assert next(meters[("api_key", "key_1")].counts) == 2


def test_counts_lose_nothing_when_threads_race(monkeypatch: pytest.MonkeyPatch) -> None:
    # A plan roomy enough for every thread's counts (a key's own limit never exceeds its plan's).
    monkeypatch.setitem(policy.PLANS, "roomy", policy.PlanLimits(live=100_000, test=100_000))
    limiter = RateLimiter(LocalCounter(), address_limit=2, wall_clock=Clock(1_000_010.5))
    busy = replace(ADA, rate_limit=100_000, plan="roomy")
    seen: list[list[int]] = [[] for _ in range(8)]

    def hammer(thread: int, mine: list[int]) -> None:
        for i in range(2000):
            mine.append(int(_admit(limiter, busy)[b"x-ratelimit-remaining"]))
            # Meters opened meanwhile.
            _admit(limiter, replace(ADA, credential_id=f"other-{thread}-{i}"))

    threads = [threading.Thread(target=hammer, args=pair) for pair in enumerate(seen)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    remaining = sorted(n for mine in seen for n in mine)
    assert remaining == list(range(100_000 - 16_000, 100_000))  # every count distinct


def test_meters_stay_bounded_dropping_past_windows_first() -> None:
    meters = Meters(max_meters=3)
    for i in range(3):
        meters.open(replace(ADA, credential_id=f"old-{i}"), 1_000_000.0)
    meters.open(replace(ADA, credential_id="new"), 1_000_070.0)
    assert set(meters) == {("api_key", "new")}
    for i in range(4):
        meters.open(replace(ADA, credential_id=f"busy-{i}"), 1_000_070.0)
    assert len(meters) <= 3
