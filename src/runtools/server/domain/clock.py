"""Injectable time: everything that expires asks a ``Clock``, never ``datetime.now``.

Tests pass a ``FrozenClock`` and move it across expiry and grace boundaries
without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def timestamp(self) -> float:
        """The current time in seconds since the epoch (no datetime made: the hot path)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    # time.time itself, not a method wrapping it: read on every authenticated request.
    timestamp = staticmethod(time.time)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def timestamp(self) -> float:
        return self._now.timestamp()

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def as_utc(value: datetime) -> datetime:
    """Datetimes read back from SQLite are naive; they were written as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
