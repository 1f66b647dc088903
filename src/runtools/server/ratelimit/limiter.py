"""``RateLimiter``: count a request against its bucket and decide, with the headers to send.

The headers a response must carry are left in the request's ASGI state
(``rate_limit_headers``) for the middleware to send, on success and on the
429 alike. Credentials are counted on ``Meters`` without an await: in
process, or on the block of shared (Redis) counts this node reserved; a
credential whose block is used up, and client addresses, through a
``Counter``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, MutableMapping
from typing import Any, NamedTuple, NoReturn

from runtools.server.domain.errors import RateLimited
from runtools.server.domain.principal import Principal
from runtools.server.ratelimit.counters import Counter, LocalCounter
from runtools.server.ratelimit.meters import STATE_KEY, Header, Meter, Meters
from runtools.server.ratelimit.policy import (
    WINDOW_SECONDS,
    credential_bucket,
    per_minute,
    window_start,
)


class Decision(NamedTuple):
    """One request's verdict from a ``Counter``."""

    limit: int
    remaining: int
    reset: int
    allowed: bool

    @classmethod
    def of(cls, count: int, limit: int, start: int) -> Decision:
        """The verdict on the ``count``-th request of the window starting at ``start``."""
        return cls(limit, max(0, limit - count), start + WINDOW_SECONDS, count <= limit)

    def headers(self) -> list[Header]:
        return [
            (b"x-ratelimit-limit", b"%d" % self.limit),
            (b"x-ratelimit-remaining", b"%d" % self.remaining),
            (b"x-ratelimit-reset", b"%d" % self.reset),
        ]


class RateLimiter:
    def __init__(
        self,
        counter: Counter,
        *,
        address_limit: int,
        enabled: bool = True,
        wall_clock: Callable[[], float] = time.time,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        self._counter = counter
        # Credentials' counts are taken from meters, without an await (``admit_here``): in
        # process, or the block of shared counts this node reserved.
        shared = not isinstance(counter, LocalCounter)
        self._meters = Meters(shared=shared) if enabled else None
        self._address_limit = address_limit
        self._enabled = enabled
        self._time = wall_clock
        self._on_refusal = on_refusal

    @property
    def meters(self) -> Meters | None:
        """Credentials' meters (None: rate limits are off)."""
        return self._meters

    @property
    def wall_clock(self) -> Callable[[], float]:
        return self._time

    async def shared_counts_down(self) -> bool:
        """Counts are meant to be shared (Redis) and their store does not answer now.

        Limits then hold per node (``FailoverCounter``); readiness says so.
        """
        if not self._enabled or isinstance(self._counter, LocalCounter):
            return False
        return not await self._counter.reachable()

    def over_limit(self, meter: Meter, state: MutableMapping[str, Any]) -> NoReturn:
        """A credential past its meter's limit: the headers of the 429, then the 429."""
        state[STATE_KEY] = meter.headers(0)
        self._refuse(meter.limit, meter.ends, "credential")

    def admit_here(self, principal: Principal, state: MutableMapping[str, Any]) -> bool:
        """``admit_principal`` without an await, when the credential's meter has a count.

        False when it has none (shared counts, this node's block used up): then
        ``admit_principal`` must run. True without counting when rate limits are
        off. (Requests in the steady state are counted by ``SteadyPath``
        instead, on the same meters.)
        """
        meters = self._meters
        if meters is None:
            return not self._enabled
        return meters.count(principal, self._time(), state, self.over_limit)

    async def admit_principal(self, principal: Principal, state: MutableMapping[str, Any]) -> None:
        """Count a request by an authenticated caller; 429 past its limit."""
        if not self.admit_here(principal, state):
            bucket = credential_bucket(principal)
            decision = await self.check(bucket, per_minute(principal))
            self._settle(decision, state, "credential")
            # The block this node reserved is handed to the meter too: the next requests
            # take their positions there, in the steady path, without an await.
            reserved = self._counter.reserved(bucket, decision.reset - WINDOW_SECONDS)
            if reserved is not None and self._meters is not None:
                self._meters.refill(principal, decision.reset, reserved)

    async def admit_address(self, address: str | None, state: MutableMapping[str, Any]) -> None:
        """Count an unauthenticated request by client address; 429 past the limit."""
        if self._enabled:
            limit = self._address_limit
            self._settle(await self.check(f"ip:{address or 'unknown'}", limit), state, "address")

    async def check(self, bucket: str, limit: int) -> Decision:
        start = window_start(self._time())
        count = await self._counter.increment(bucket, start, WINDOW_SECONDS + 1, block_for(limit))
        return Decision.of(count, limit, start)

    def _settle(self, decision: Decision, state: MutableMapping[str, Any], kind: str) -> None:
        state[STATE_KEY] = decision.headers()
        if not decision.allowed:
            self._refuse(decision.limit, decision.reset, kind)

    def _refuse(self, limit: int, reset: int, kind: str) -> NoReturn:
        if self._on_refusal is not None:
            self._on_refusal(kind)
        retry_after = max(1, math.ceil(reset - self._time()))
        raise RateLimited(
            f"Rate limit of {limit} requests per minute exceeded; retry in {retry_after}s",
            retry_after=retry_after,
        )


def block_for(limit: int) -> int:
    """How many counts a node may reserve at once from a shared counter (see BlockCounter)."""
    return 1 if limit < 100 else min(100, limit // 50)
