"""Writing an uploaded file's content so that the sandbox pays for it.

A sandbox's writable directories are tmpfs mounts: their pages are memory,
charged to the memory cgroup of the process that writes them. Written by
the service itself, an upload would be charged to the service's cgroup, and
a tenant could hold host memory beyond its sandbox's limit (up to its disk
size on each of the three mounts). So the content goes through ``cat``,
run in a fresh leaf of the sandbox's cgroups, into a file the service
opened and confined beforehand: the upload counts against the sandbox's
``memory`` like anything its commands write.

``cat`` runs on the host as root but can only write to the one open file
it is given as stdout. It is the OOM killer's first choice (``oom``), so an
upload that fills the sandbox's memory fails alone: the sandbox's processes
are left running.
"""

from __future__ import annotations

import errno
import secrets
import subprocess

from runtools.server.errors import SandboxError, SandboxFileTooLarge, SandboxStateConflict
from runtools.server.sandbox.cgroups import SandboxCgroup
from runtools.server.sandbox.enter import HOST_ENV, JOIN_FAILED, join_cgroups_argv
from runtools.server.sandbox.oom import WRITER_SCORE, scored

__all__ = ["UPLOAD_LEAF_PREFIX", "write_charged"]

UPLOAD_LEAF_PREFIX = "upload-"
#: Generous: ``cat`` moves the largest upload (tens of MiB) in well under a second.
UPLOAD_TIMEOUT_S = 60.0
_WRITER = scored(WRITER_SCORE, ["/bin/cat"])


def write_charged(cgroup: SandboxCgroup, fd: int, data: bytes, path: str) -> None:
    """Write ``data`` to the open file ``fd`` from a process in ``cgroup``.

    Raises ``OSError(ENOSPC)`` when the mount is full (the caller translates
    it as for any write), ``SandboxFileTooLarge`` when the sandbox's memory
    is, ``SandboxStateConflict`` when the sandbox is paused.
    """
    if cgroup.is_frozen():
        raise SandboxStateConflict("the sandbox is paused")
    leaf = f"{UPLOAD_LEAF_PREFIX}{secrets.token_hex(6)}"
    procs = cgroup.make_leaf(leaf)
    try:
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell input from the caller
                join_cgroups_argv(procs, _WRITER),
                input=data,
                stdout=fd,
                stderr=subprocess.PIPE,
                env=HOST_ENV,
                timeout=UPLOAD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"writing {path} timed out") from exc
        except OSError as exc:
            raise SandboxError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        cgroup.remove_leaf(leaf)
    if done.returncode == 0:
        return
    message = done.stderr.decode(errors="replace").strip()
    if message.startswith(JOIN_FAILED):
        raise SandboxError(message)
    if "No space left" in message:
        raise OSError(errno.ENOSPC, "No space left on device")
    if done.returncode < 0 or "Cannot allocate memory" in message:
        # Killed by the sandbox's OOM killer, or refused memory: its memory is full.
        raise SandboxFileTooLarge(f"no memory left in the sandbox for {path}")
    raise SandboxError(f"cannot write {path}: {message or f'exit {done.returncode}'}")
