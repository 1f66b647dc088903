"""``Meters``: each credential's count in the current window, as this process hands it out.

Rate limiting's per-request step, taken by the steady path without an
await. A ``Meter`` is one credential's window: its counts (one ``next()``
per request, atomic without a lock) and what does not change
until the window ends, built once when it opens: the limit and the
``X-RateLimit-Limit`` and ``X-RateLimit-Reset`` headers. A request then
costs a dict lookup, a count and one formatted number.

A meter belongs to one ``Principal`` object. The authenticator builds a new
one whenever what it knows of the credential changes (a plan, the key's own
``rateLimit``), so the next request reopens the meter with the new limit,
keeping the window's count.

Counts live in this process (an ``itertools.count``), or in Redis: then a
meter hands out the block of positions this node last reserved (``refill``,
see ``BlockCounter``), and a request finding none left is counted by the
limiter, which reserves the next block.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from runtools.server.domain.principal import Principal
from runtools.server.ratelimit.policy import WINDOW_SECONDS, per_minute, window_start

Header = tuple[bytes, bytes]

#: Where a counted request's rate-limit headers are left (its ASGI state), for the
#: middleware to send on the response, the 429 included.
STATE_KEY = "rate_limit_headers"


@dataclass(frozen=True, slots=True)
class Meter:
    principal: Principal
    limit: int
    #: The window's end, in seconds since the epoch: ``X-RateLimit-Reset``.
    ends: int
    counts: Iterator[int]
    limit_header: Header
    reset_header: Header

    def headers(self, remaining: int) -> list[Header]:
        return [
            self.limit_header,
            (b"x-ratelimit-remaining", b"%d" % remaining),
            self.reset_header,
        ]


#: Which credential a meter counts: its kind and id.
MeterKey = tuple[str, str]


class Meters(dict[MeterKey, Meter]):
    """The current meters, by ``(credential_type, credential_id)``; bounded.

    Read with ``get`` (a plain dict lookup); ``open`` when there is no
    meter, it belongs to another ``Principal`` object or its window ended.
    """

    def __init__(self, *, max_meters: int = 100_000, shared: bool = False) -> None:
        super().__init__()
        self._max = max_meters
        self._lock = threading.Lock()
        # Shared counts (Redis): a meter hands out only the positions this node reserved
        # (``refill``); when they run out, the request is counted by the limiter instead.
        self._shared = shared

    def count(
        self,
        principal: Principal,
        now: float,
        state: MutableMapping[str, Any],
        over_limit: Callable[[Meter, MutableMapping[str, Any]], Any],
    ) -> bool:
        """Count a request on its meter, leaving its headers in ``state``; False: not here.

        Past the limit, ``over_limit(meter, state)`` must raise (the 429). False
        when the meter has no count left to give (shared counts, block used up).
        """
        meter = self.get((principal.credential_type, principal.credential_id))
        if meter is None or meter.principal is not principal or meter.ends <= now:
            meter = self.open(principal, now)
        position = next(meter.counts, None)
        if position is None:
            return False
        remaining = meter.limit - position
        if remaining < 0:
            over_limit(meter, state)
            raise RuntimeError("over_limit must raise")
        # meter.headers(remaining), spelt out: this runs on every request.
        state[STATE_KEY] = [
            meter.limit_header,
            (b"x-ratelimit-remaining", b"%d" % remaining),
            meter.reset_header,
        ]
        return True

    def refill(self, principal: Principal, ends: int, positions: Iterator[int]) -> None:
        """Hand a meter the positions this node reserved in the window ending at ``ends``."""
        meter = self.get((principal.credential_type, principal.credential_id))
        if meter is None or meter.principal is not principal or meter.ends != ends:
            meter = self.open(principal, ends - WINDOW_SECONDS)
        if meter.ends == ends:
            with self._lock:
                self[(principal.credential_type, principal.credential_id)] = replace(
                    meter, counts=positions
                )

    def open(self, principal: Principal, now: float) -> Meter:
        key = (principal.credential_type, principal.credential_id)
        ends = window_start(now) + WINDOW_SECONDS
        with self._lock:
            meter = self.get(key)
            if meter is not None and (
                meter.ends > ends or (meter.ends == ends and meter.principal is principal)
            ):
                return meter  # opened meanwhile by another thread (maybe the next window's)
            # The same window, newer terms: the count goes on.
            counts = meter.counts if meter is not None and meter.ends == ends else None
            limit = per_minute(principal)
            meter = self[key] = Meter(
                principal,
                limit,
                ends,
                counts or (iter(()) if self._shared else itertools.count(1)),
                (b"x-ratelimit-limit", b"%d" % limit),
                (b"x-ratelimit-reset", b"%d" % ends),
            )
            if len(self) > self._max:
                self._evict(ends)
        return meter

    def _evict(self, ends: int) -> None:
        """Past windows go first; if the current one alone is over the bound, everything."""
        for key in [k for k, meter in self.items() if meter.ends != ends]:
            del self[key]
        if len(self) > self._max:
            self.clear()
