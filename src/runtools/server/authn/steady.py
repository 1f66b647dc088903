"""``SteadyPath``: an authenticated request in the steady state, in one call.

Most requests carry a credential verified a moment ago. For them the guard
makes one call, ``steady_path(raw_headers, state)``, which:

1. finds the one credential header, sent exactly as ``X-API-Key: <key>`` or
   ``Authorization: Bearer <token>`` (two credential headers, or any other
   form, are left to the full path);
2. hashes its exact bytes (SHA-256, hex) and looks the digest up among the
   verified credentials (the ``VerificationCache``'s entries; cached misses
   and expired entries are not vouched for);
3. checks the credential has not ended (expiry, a rotation's grace, an
   owner who left, a honeytoken) and that where it comes from needs no
   look: a key with an address allowlist, or a browser's request (``Origin``
   or ``Sec-Fetch-Site``) with a key that refuses browsers, is left to the
   full path;
4. notes a use of an API key (``lastUsedAt``) when one is due, at most once
   a minute;
5. counts the request on the credential's meter, leaving the three
   ``X-RateLimit-*`` headers in ``state`` (a 429 past the limit). With counts
   in Redis the meter hands out the block of positions this node reserved;
   when it has none left (or rate limits are off) no headers are left, and
   the guard has the ``RateLimiter`` count the request.

It returns the ``Principal``, also left in ``state["principal"]``, or None:
"not vouched for here". The full path (``Authenticator.authenticate``)
then decides, and audits any refusal. So this path may only ever refuse
more than the full path, never admit more.

This runs on every authenticated request, where the target is a cost no
one can measure; it stays a copy of no rule of its own beyond "not sure:
ask the full path". A differential test sends random requests, across
expiries, rotations, revocations and removed owners, to both this path
and ``authenticate()`` and fails if this one ever admits what the other
refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from runtools.server.domain.keys import sha256_hex
from runtools.server.domain.principal import Principal

if TYPE_CHECKING:
    from runtools.server.authn.authenticator import Authenticator
    from runtools.server.ratelimit.limiter import RateLimiter
    from runtools.server.ratelimit.meters import Meter, Meters

RawHeaders = Sequence[tuple[bytes, bytes]]

#: Where the principal is left for the rest of the request.
PRINCIPAL_KEY = "principal"


class SteadyPath:
    """See the module's docstring for the steps."""

    def __init__(
        self,
        *,
        entries: Mapping[str, tuple[Any, float]],
        monotonic: Callable[[], float],
        timestamp: Callable[[], float],
        touch: Callable[[str, float], float],
        meters: Meters | None,
        wall_clock: Callable[[], float],
        open_meter: Callable[[Principal, float], Meter],
        over_limit: Callable[[Meter, MutableMapping[str, Any]], Any],
    ) -> None:
        self._entries = entries
        self._monotonic = monotonic
        self._timestamp = timestamp
        self._touch = touch
        self._meters = meters
        self._wall_clock = wall_clock
        self._open_meter = open_meter
        self._over_limit = over_limit
        self.hits = 0

    def __call__(
        self, raw_headers: RawHeaders, state: MutableMapping[str, Any]
    ) -> Principal | None:
        principal = self.vouch(raw_headers)
        if principal is not None:
            state[PRINCIPAL_KEY] = principal
            if self._meters is not None:
                self._meters.count(principal, self._wall_clock(), state, self._over_limit)
        return principal

    def vouch(self, raw_headers: RawHeaders) -> Principal | None:
        """Steps 1 to 4 alone: the principal, or None; nothing is counted on a meter.

        For a credential checked on behalf of another service
        (``authn/verification.py``): the service's own call is what is counted.
        """
        api_key = authorization = None
        browser = False
        for name, value in raw_headers:
            if name == b"x-api-key":
                if api_key is not None:
                    return None  # two credentials are never told apart here
                api_key = value
            elif name == b"authorization":
                if authorization is not None:
                    return None
                authorization = value
            elif name == b"origin" or name == b"sec-fetch-site":
                browser = True
        if authorization is not None:
            if api_key is not None or authorization[:7] != b"Bearer ":
                return None
            presented = authorization[7:]
        elif api_key is not None:
            presented = api_key
        else:
            return None
        entry = self._entries.get(sha256_hex(presented))
        if entry is None:
            return None
        verified, expires = entry
        if verified is None or expires <= self._monotonic():
            return None
        self.hits += 1
        now = self._timestamp()
        if verified.ends <= now:  # also a key whose owner left, or a canary: its end is -inf
            return None
        if verified.networks or (browser and not verified.browser_allowed):
            return None  # the caller's address or origin decides: the full path's to judge
        if verified.key_id is not None:
            verified.uses[0] += 1
            note = verified.next_note
            if now >= note[0]:
                note[0] = self._touch(verified.key_id, now)
        elif authorization is None:
            return None  # an access token sent as X-API-Key: the full path refuses it
        principal: Principal = verified.principal
        return principal


def build_steady_path(authenticator: Authenticator, rate_limiter: RateLimiter) -> SteadyPath:
    """The steady path over this runtime's cache and meters."""
    meters = rate_limiter.meters
    return SteadyPath(
        entries=authenticator.cache.entries,
        monotonic=authenticator.cache.monotonic,
        timestamp=authenticator.clock.timestamp,
        touch=authenticator.note_use,
        meters=meters,
        wall_clock=rate_limiter.wall_clock,
        open_meter=meters.open if meters is not None else _no_meters,
        over_limit=rate_limiter.over_limit,
    )


def _no_meters(principal: Principal, now: float) -> Meter:
    raise RuntimeError("counts do not live in this process")
