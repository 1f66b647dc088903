"""Bounded handling of command output.

A command may print gigabytes; the service must keep only a prefix and
still read (and throw away) the rest, otherwise the writer blocks on a full
pipe and the command never finishes. Pipes can also outlive the command: a
background process started with ``&`` inherits them. Those pipes are handed
to :class:`Leftovers`, which drains them in one thread until the last writer
exits, so background processes never block or die of ``EPIPE``.

Not here: starting or waiting for the command (``process``).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading

__all__ = ["READ_CHUNK", "CappedStream", "Leftovers"]

# Matches the pipe capacity we ask for (``F_SETPIPE_SZ``), so one read can
# empty a full pipe.
READ_CHUNK = 1024 * 1024


class CappedStream:
    """Keeps the first ``limit`` bytes of a stream and counts what it drops."""

    def __init__(self, limit: int) -> None:
        self._remaining = max(0, limit)
        self.truncated = False
        self.dropped = 0

    def admit(self, data: bytes) -> bytes:
        """Return the part of ``data`` that still fits; remember if anything did not."""
        if len(data) <= self._remaining:
            self._remaining -= len(data)
            return data
        kept = data[: self._remaining]
        self.dropped += len(data) - len(kept)
        self._remaining = 0
        self.truncated = True
        return kept


class Leftovers:
    """One daemon thread that drains orphaned pipes and reaps abandoned children.

    Independent of any event loop on purpose: leftovers must keep being
    serviced even if the loop that ran the command is gone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None

    def adopt_pipe(self, fd: int) -> None:
        """Take ownership of a non-blocking read end; it is closed at EOF."""
        self._register(fd, None)

    def adopt_process(self, proc: subprocess.Popen[bytes], pidfd: int) -> None:
        """Take ownership of a child that may still be running; it is reaped on exit."""
        self._register(pidfd, proc)

    def _register(self, fd: int, proc: subprocess.Popen[bytes] | None) -> None:
        with self._lock:
            self._selector.register(fd, selectors.EVENT_READ, proc)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-leftovers", daemon=True
                )
                self._thread.start()
        # The thread may be blocked in select() with the old fd set.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                fd = int(key.fd)
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake_r, 4096):
                            pass
                    continue
                proc: subprocess.Popen[bytes] | None = key.data
                if proc is not None:
                    proc.wait()
                    self._forget(fd)
                    continue
                try:
                    data = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._forget(fd)

    def _forget(self, fd: int) -> None:
        with self._lock:
            self._selector.unregister(fd)
        os.close(fd)
