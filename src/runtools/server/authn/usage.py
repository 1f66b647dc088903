"""A key's use, coalesced: ``lastUsedAt`` and its counts by day, with no write per request.

The request path only notes in memory: the time of a use, to the minute
(``touch``), and one more request on the key's counter (``counter``: a
one-item list the verified key holds, so the steady path adds to it in
place). Refusals (``refused``: an invalid use of a known key, or a 429) are
noted the same way, and so is the address of each use the full path checks
(``seen_from``: at least once per cache period while a key is in use, and
every refusal). A background flush writes, in one transaction, the
newest time per key and what each counter gained since the last flush,
added to the key's row for the day of the flush (UTC), whichever node
flushes. Counts are the requests this node admitted: each request is
counted by the node that received it, forwarded or not.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, date, datetime

from runtools.server.domain.errors import ServiceUnavailable
from runtools.server.store.database import Database
from runtools.server.store.repositories import api_keys
from runtools.server.store.repositories.api_keys import UsageCounts

logger = logging.getLogger("runtools.usage")

INVALID = "invalid"
RATE_LIMITED = "rate_limited"


class UsageRecorder:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: dict[str, datetime] = {}
        self._recorded_minute: dict[str, int] = {}  # minutes since the epoch
        # Per key: its request counter (only the event loop adds to it) and
        # what of it was already written; refusals since the last flush.
        self._counters: dict[str, list[int]] = {}
        self._written: dict[str, int] = {}
        self._refused: Counter[tuple[str, str]] = Counter()
        self._unwritten: dict[str, UsageCounts] = {}  # a flush that failed, kept for the next
        self._addresses: dict[str, str] = {}  # the latest address each key was seen from
        self._lock = threading.Lock()

    def touch(self, key_id: str, now: float) -> float:
        """Note a use at ``now`` (seconds since the epoch); returns when the next is due.

        Uses are noted to the minute: until the returned time (the minute's end)
        another note of this key changes nothing, so a caller may skip it.
        """
        minute = int(now // 60)
        if self._recorded_minute.get(key_id) != minute:
            with self._lock:
                self._recorded_minute[key_id] = minute
                self._pending[key_id] = datetime.fromtimestamp(minute * 60, UTC)
                if len(self._recorded_minute) > 100_000:
                    self._recorded_minute.clear()
        return (minute + 1) * 60.0

    def counter(self, key_id: str) -> list[int]:
        """The key's request counter: add 1 to its one item per admitted request."""
        with self._lock:
            return self._counters.setdefault(key_id, [0])

    def seen_from(self, key_id: str, address: str | None) -> None:
        """Note where a use of the key checked in full came from (the day's last address)."""
        if address:
            with self._lock:
                self._addresses[key_id] = address[:64]

    def refused(self, key_id: str, kind: str) -> None:
        """Note a refused use of a known key: ``INVALID`` or ``RATE_LIMITED``."""
        with self._lock:
            self._refused[key_id, kind] += 1

    def flush(self, today: date | None = None) -> int:
        """Write what was noted; the number of keys written. Kept for later if it fails."""
        with self._lock:
            pending, self._pending = self._pending, {}
            addresses, self._addresses = self._addresses, {}
            counts = self._take_counts()
        if not pending and not counts and not addresses:
            return 0
        day = today or datetime.now(UTC).date()
        try:
            with self._database.failing_closed() as session:  # any error: retry later
                api_keys.note_uses(session, pending)
                api_keys.add_usage(session, day, counts, addresses)
                session.commit()
        except ServiceUnavailable:
            logger.warning("could not record the use of %d keys; will retry", len(pending))
            with self._lock:
                for key_id, used_at in pending.items():
                    self._pending.setdefault(key_id, used_at)
                self._unwritten = _summed(self._unwritten, counts)
                for key_id, address in addresses.items():
                    self._addresses.setdefault(key_id, address)
            return 0
        return len(pending.keys() | counts.keys() | addresses.keys())

    def _take_counts(self) -> dict[str, UsageCounts]:
        counts = dict(self._unwritten)
        self._unwritten = {}
        for key_id, counter in self._counters.items():
            now = counter[0]
            gained = now - self._written.get(key_id, 0)
            if gained:
                self._written[key_id] = now
                counts = _summed(counts, {key_id: (gained, 0, 0)})
        for (key_id, kind), n in self._refused.items():
            refusal = (0, n, 0) if kind == INVALID else (0, 0, n)
            counts = _summed(counts, {key_id: refusal})
        self._refused.clear()
        return counts


def _summed(a: dict[str, UsageCounts], b: dict[str, UsageCounts]) -> dict[str, UsageCounts]:
    out = dict(a)
    for key_id, (r, i, lim) in b.items():
        r0, i0, l0 = out.get(key_id, (0, 0, 0))
        out[key_id] = (r0 + r, i0 + i, l0 + lim)
    return out
