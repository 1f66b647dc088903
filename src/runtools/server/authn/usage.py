"""``lastUsedAt``, coalesced: at most one write per key per flush interval.

The request path only notes the time in memory (minute precision); a
background flush writes the newest time per key in one transaction.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from runtools.server.domain.errors import ServiceUnavailable
from runtools.server.store.database import Database
from runtools.server.store.repositories import api_keys

logger = logging.getLogger("runtools.usage")


class UsageRecorder:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: dict[str, datetime] = {}
        self._recorded_minute: dict[str, int] = {}  # minutes since the epoch
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

    def flush(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with self._database.failing_closed() as session:  # any error: retry later
                api_keys.note_uses(session, pending)
                session.commit()
        except ServiceUnavailable:
            logger.warning("could not record lastUsedAt for %d keys; will retry", len(pending))
            with self._lock:
                for key_id, used_at in pending.items():
                    self._pending.setdefault(key_id, used_at)
            return 0
        return len(pending)
