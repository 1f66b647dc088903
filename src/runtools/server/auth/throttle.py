"""Throttling of guesses: sign-in failures and wrong device user codes.

A sliding window per subject (an account, an address): after ``limit``
failures within ``window`` seconds, further attempts are refused until the
oldest failure leaves the window. Only failures count, so a legitimate user
who types correctly is never slowed down. In process; bounded in memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from runtools.server.errors import RateLimited


class Throttle:
    def __init__(
        self,
        *,
        limit: int,
        window: float,
        max_subjects: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._max = max_subjects
        self._monotonic = monotonic
        self._lock = threading.Lock()

    def check(self, subject: str, what: str) -> None:
        """Raise ``RateLimited`` if ``subject`` is over its limit.

        ``what`` says what happened ("Too many failed sign-ins"); the message
        adds when to retry, in the seconds ``Retry-After`` gives too.
        """
        with self._lock:
            failures = self._recent(subject)
            if failures is not None and len(failures) >= self.limit:
                retry_after = int(failures[0] + self.window - self._monotonic()) + 1
                raise RateLimited(f"{what}; retry in {retry_after}s", retry_after=retry_after)

    def failed(self, subject: str) -> None:
        with self._lock:
            failures = self._recent(subject)
            if failures is None:
                failures = deque()
                self._failures[subject] = failures
            failures.append(self._monotonic())
            self._failures.move_to_end(subject)
            while len(self._failures) > self._max:
                self._failures.popitem(last=False)

    def reset(self, subject: str) -> None:
        with self._lock:
            self._failures.pop(subject, None)

    def _recent(self, subject: str) -> deque[float] | None:
        failures = self._failures.get(subject)
        if failures is None:
            return None
        horizon = self._monotonic() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures
