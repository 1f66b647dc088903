"""The service processes that hold one driver's sandboxes, and which of them came first.

``runtools serve --workers N`` runs N processes over one state directory,
and uvicorn replaces a worker that dies while the others go on. Cleaning up
after the previous service (``upkeep.reconcile``) is right only for a
process that starts alone: run beside live workers it would fail and reap
the sandboxes they are creating at that moment. So each process holds a
shared lock on ``holders.lock`` for as long as it runs, and one that starts
checks, under ``joining.lock``, whether it could take that lock exclusively
(nobody else holds it). The kernel drops the locks of a process that dies,
``kill -9`` included, so a crashed worker never counts.

Not here: what is done when alone or not (``services.sandboxes.upkeep``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["Holders"]

HOLDERS = "holders.lock"
JOINING = "joining.lock"


class Holders:
    """This process's place among those holding the sandboxes under ``root``."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._held: int | None = None

    @contextlib.asynccontextmanager
    async def joining(self) -> AsyncIterator[bool]:
        """Join, yielding whether no other process holds these sandboxes.

        Others that join meanwhile wait until the block ends, so the first
        one's clean-up runs before a second process starts serving.
        """
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        gate = _open(self._root / JOINING)
        try:
            await asyncio.to_thread(fcntl.flock, gate, fcntl.LOCK_EX)
            held = _open(self._root / HOLDERS)
            alone = _try_lock(held, fcntl.LOCK_EX)
            fcntl.flock(held, fcntl.LOCK_SH)  # the gate keeps anyone from slipping in between
            self._held = held
            yield alone
        finally:
            os.close(gate)  # and with it the gate's lock

    def leave(self) -> bool:
        """Stop holding; whether this was the last process that did."""
        held, self._held = self._held, None
        if held is None:
            return False
        try:
            fcntl.flock(held, fcntl.LOCK_UN)
            return _try_lock(held, fcntl.LOCK_EX)
        finally:
            os.close(held)


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
