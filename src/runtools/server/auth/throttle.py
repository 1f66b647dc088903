"""Throttling of guesses: sign-in failures and wrong device user codes.

A sliding window per subject (an account, an address): after ``limit``
failures within ``window`` seconds, further attempts are refused until the
oldest failure leaves the window. Only failures count, so a legitimate user
who types correctly is never slowed down.

Failures are kept in the database, so every worker and every node counts
the same ones: spreading guesses over the nodes of a cluster (or the
workers of one) buys an attacker nothing. Subjects are stored as SHA-256
digests, never as typed. The database not answering is a 503: guesses are
never let through uncounted.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.exc import SQLAlchemyError

from runtools.server.clock import Clock
from runtools.server.errors import Throttled
from runtools.server.store import auth_failures
from runtools.server.store.database import Database, unavailable


class Throttle:
    def __init__(
        self, *, database: Database, clock: Clock, name: str, limit: int, window: float
    ) -> None:
        self._database = database
        self._clock = clock
        self._name = name
        self.limit = limit
        self.window = window

    def check(self, subject: str, what: str) -> None:
        """Raise ``Throttled`` if ``subject`` is over its limit.

        ``what`` says what happened ("Too many failed sign-ins"); the message
        adds when to retry, in the seconds ``Retry-After`` gives too.
        """
        now = self._clock.timestamp()
        try:
            with self._database.session() as session:
                count, oldest = auth_failures.recent(
                    session, self._digest(subject), now - self.window
                )
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc
        if count >= self.limit and oldest is not None:
            retry_after = max(1, int(oldest + self.window - now) + 1)
            raise Throttled(f"{what}; retry in {retry_after}s", retry_after=retry_after)

    def failed(self, subject: str) -> None:
        now = self._clock.timestamp()
        try:
            with self._database.session() as session:
                auth_failures.add(
                    session,
                    self._name,
                    self._digest(subject),
                    now,
                    forget_before=now - self.window,
                )
                session.commit()
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    def reset(self, subject: str) -> None:
        try:
            with self._database.session() as session:
                auth_failures.forget(session, self._digest(subject))
                session.commit()
        except SQLAlchemyError as exc:
            raise unavailable(exc) from exc

    def _digest(self, subject: str) -> str:
        return hashlib.sha256(f"{self._name}:{subject}".encode()).hexdigest()
