"""When to retry a request, and how long to wait first: pure functions only.

Nothing here performs I/O or sleeps; the clients call these and do the
waiting themselves, so the arithmetic is tested without a clock.

Policy, in the manner of the Anthropic and OpenAI SDKs:

- retry connection errors, timeouts, and the statuses 408, 409, 429 and 5xx;
- GET, PATCH, DELETE and the other idempotent methods retry freely; POST
  retries only when it carries an ``Idempotency-Key`` (every create call the
  SDK makes does), so the server can recognise the repeat;
- wait what ``Retry-After`` asks when it is at most :data:`MAX_RETRY_AFTER`
  seconds; when the server asks for longer, stop and let the caller decide
  rather than blocking them silently;
- otherwise capped exponential backoff with jitter.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "IDEMPOTENCY_HEADER",
    "INITIAL_RETRY_DELAY",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "backoff_delay",
    "is_retry_safe",
    "is_retryable_status",
    "parse_retry_after",
    "retry_delay",
]

DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
# Longer waits than this are better surfaced (RateLimitError.retry_after) than slept through.
MAX_RETRY_AFTER = 60.0

IDEMPOTENCY_HEADER = "Idempotency-Key"

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})


def is_retryable_status(status_code: int) -> bool:
    """True for statuses that say "try again": timeout, lock conflict, rate limit, 5xx."""
    return status_code in _RETRYABLE_STATUSES or status_code >= 500


def is_retry_safe(method: str, headers: Mapping[str, str]) -> bool:
    """Whether repeating this request cannot do the work twice.

    ``headers`` must be case-insensitive (``httpx.Headers``) or use the
    canonical ``Idempotency-Key`` spelling.
    """
    method = method.upper()
    if method in _IDEMPOTENT_METHODS:
        return True
    return method == "POST" and bool(headers.get(IDEMPOTENCY_HEADER))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None if absent or unreadable.

    Accepts delay-seconds (``"2"``, tolerating ``"1.5"``) and HTTP dates
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``); a date in the past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # float() also accepts "nan" and "inf"; neither is a wait.
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def backoff_delay(retries_taken: int, *, random: Callable[[], float]) -> float:
    """Capped exponential backoff: 0.5 s, 1 s, 2 s, … up to 8 s, less up to 25 % jitter.

    ``random`` returns a float in [0, 1); jitter keeps many clients that
    failed together from retrying together.
    """
    base = min(INITIAL_RETRY_DELAY * (2.0**retries_taken), MAX_RETRY_DELAY)
    return base * (1.0 - 0.25 * random())


def retry_delay(
    *,
    retries_taken: int,
    max_retries: int,
    retry_after: float | None,
    random: Callable[[], float],
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up.

    The caller has already decided the failure is retryable and the request
    safe to repeat; this only counts attempts and picks the wait.
    """
    if retries_taken >= max_retries:
        return None
    if retry_after is not None:
        if retry_after > MAX_RETRY_AFTER:
            return None
        return retry_after
    return backoff_delay(retries_taken, random=random)
