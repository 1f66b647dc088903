"""Throttling of guesses: sign-ins and device user codes.

A sliding window per subject (an account, an address): after ``limit``
failures within ``window`` seconds, further attempts are refused until the
oldest failure leaves the window. A legitimate user who types correctly is
never slowed down.

A guess is counted *before* it is judged (``admit``) and uncounted if it
turns out right (``succeeded``): counting only after a slow password check
let every guess already in flight through, so parallel guesses went past
the limit. Admitting is serialised per subject in the database.

Guesses are kept in the database, so every worker and every node counts
the same ones: spreading guesses over the nodes of a cluster (or the
workers of one) buys an attacker nothing. Subjects are stored as HMACs
under a service secret, never as typed, and cannot be recovered by hashing
every address or a list of emails. The database not answering is a 503:
guesses are never let through uncounted.

The counting rule lives here; its queries (and the per-subject lock) are
``store.repositories.auth_failures``. What is being guessed, a password or
a code, is the caller's business.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import Throttled
from runtools.server.store.database import Database
from runtools.server.store.repositories import auth_failures

if TYPE_CHECKING:
    from runtools.server.store.database import Session

T = TypeVar("T")


class Throttle:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        key: bytes,
        name: str,
        limit: int,
        window: float,
    ) -> None:
        self._database = database
        self._clock = clock
        self._key = key
        self._name = name
        self.limit = limit
        self.window = window

    def admit(self, subject: str, what: str) -> int:
        """Count a guess by ``subject`` now; ``Throttled`` if it is one too many.

        ``what`` says what happened ("Too many failed sign-ins"); the message
        adds when to retry, in the seconds ``Retry-After`` gives too. Returns
        the guess's id for ``succeeded``.
        """
        now = self._clock.timestamp()
        digest = self._digest(subject)

        def count(session: Session) -> int:
            auth_failures.forget_older(session, self._name, now - self.window)
            auth_failures.lock(session, self._name, digest)
            recent, oldest = auth_failures.recent(session, digest, now - self.window)
            if recent >= self.limit and oldest is not None:
                retry_after = max(1, int(oldest + self.window - now) + 1)
                raise Throttled(f"{what}; retry in {retry_after}s", retry_after=retry_after)
            return auth_failures.add(session, self._name, digest, now)

        return self._write(count)

    def succeeded(self, guess_id: int) -> None:
        """The guess was right: it no longer counts."""
        self._write(lambda session: auth_failures.remove(session, guess_id))

    def reset(self, subject: str) -> None:
        """Forget every guess by ``subject`` (an account after a correct password)."""
        digest = self._digest(subject)
        self._write(lambda session: auth_failures.forget(session, digest))

    def _write(self, work: Callable[[Session], T]) -> T:
        with self._database.failing_closed() as session:
            result = work(session)
            session.commit()
            return result

    def _digest(self, subject: str) -> str:
        message = f"{self._name}:{subject}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
