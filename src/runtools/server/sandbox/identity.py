"""Referring to a host process safely across pid reuse.

A sandbox is addressed through the host pid of its PID 1. Pids are reused,
so every access goes through a ``/proc/<pid>`` directory fd whose start time
matched the recorded one: that fd stays bound to the original process and
fails once it has exited, so a recycled pid can never redirect file access
or ``nsenter`` to an unrelated process.

Not here: what is done with the process once found (``enter``, ``local``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ProcessRef", "is_alive", "open_process", "start_time"]


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    start_time: int


def _stat_tail(proc_fd: int) -> list[str]:
    """Fields 3.. of ``/proc/<pid>/stat`` (state, ppid, ...)."""
    fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    try:
        raw = os.read(fd, 4096).decode()
    finally:
        os.close(fd)
    # comm (field 2) may contain spaces and parentheses; what follows the
    # last ')' is fixed.
    return raw[raw.rindex(")") + 2 :].split()


def _open_proc_dir(pid: int) -> int | None:
    try:
        return os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    fd = _open_proc_dir(pid)
    if fd is None:
        return None
    try:
        return int(_stat_tail(fd)[19])  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)


def open_process(ref: ProcessRef) -> int | None:
    """A ``/proc/<pid>`` directory fd for exactly this live process, or None."""
    fd = _open_proc_dir(ref.pid)
    if fd is None:
        return None
    try:
        tail = _stat_tail(fd)
        if int(tail[19]) == ref.start_time and tail[0] not in ("Z", "X"):
            return fd
    except (OSError, ValueError, IndexError):
        pass
    os.close(fd)
    return None


def is_alive(ref: ProcessRef) -> bool:
    fd = open_process(ref)
    if fd is None:
        return False
    os.close(fd)
    return True
