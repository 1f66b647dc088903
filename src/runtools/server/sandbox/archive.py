"""Many files at once: a tar stream unpacked into a sandbox, or a directory of it packed.

Both run ``archive_worker`` (a script of the service's interpreter, standard
library only) placed in a leaf of the sandbox's cgroups, its network, IPC
and UTS namespaces and under its seccomp filter, and, once it has loaded
what it needs, chrooted into the sandbox's root as the sandbox user. It is
the OOM killer's first choice (``oom``). So an archive is charged to the
sandbox (memory, CPU, pids, and its files to its disk) and can do nothing a
command of the sandbox could not: this module never touches a path of the
sandbox itself.

The stream is fed to the worker as it arrives and read from it as it is
produced; no archive is ever held whole in the service. When the worker
refuses an upload part-way, the rest of the body is still read (and
dropped) so the caller receives the refusal instead of a broken pipe.

Not here: resolving and confining the target beforehand (``filesystem``),
which sandbox (``local``), who may (the services).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtools.server.domain.errors import (
    InvalidRequest,
    SandboxError,
    SandboxFileTooLarge,
    SandboxPathRejected,
    SandboxStateConflict,
)
from runtools.server.sandbox.cgroups import SandboxCgroup
from runtools.server.sandbox.driver import ArchiveWritten
from runtools.server.sandbox.enter import HOST_ENV, JOIN_FAILED, NamespaceFds, join_cgroups_argv
from runtools.server.sandbox.oom import WRITER_SCORE, scored

__all__ = ["ARCHIVE_LEAF_PREFIX", "SandboxDoor", "pack", "unpack"]

ARCHIVE_LEAF_PREFIX = "archive-"
WORKER = Path(__file__).with_name("archive_worker.py")
#: Once the whole body is in, the worker has this long to finish extracting.
FINISH_TIMEOUT_S = 300.0
#: A cancelled worker cleans up on SIGTERM; after this it is killed.
TERM_GRACE_S = 5.0
READ_CHUNK = 256 * 1024
_PATH_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENOTEMPTY,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.EROFS,
}


@dataclass(frozen=True)
class SandboxDoor:
    """What the worker needs to get into one running sandbox.

    ``fds`` are the sandbox's namespaces and root, opened from its verified
    PID 1 and kept open by the caller until the transfer has ended.
    """

    sandbox_id: str
    cgroup: SandboxCgroup
    fds: NamespaceFds
    uid: int
    gid: int
    nsenter: str
    #: Installs the sandbox's seccomp filter in the forked worker, as for commands.
    confine: Callable[[], None]


def _argv(door: SandboxDoor, command: str, target: str, leaf: str) -> tuple[list[str], int]:
    own = f"/proc/{os.getpid()}/fd"
    ns = door.fds.namespaces
    worker = [
        door.nsenter,
        f"--net={own}/{ns['net']}",
        f"--ipc={own}/{ns['ipc']}",
        f"--uts={own}/{ns['uts']}",
        "--",
        sys.executable,
        "-I",
        "-S",
        str(WORKER),
        command,
        str(door.fds.root),
        str(door.uid),
        str(door.gid),
        target,
    ]
    procs = door.cgroup.make_leaf(leaf)
    return join_cgroups_argv(procs, scored(WRITER_SCORE, worker)), door.fds.root


async def _spawn(
    door: SandboxDoor, command: str, target: str, *, stdin: int | None
) -> tuple[asyncio.subprocess.Process, str]:
    if door.cgroup.is_frozen():
        raise SandboxStateConflict(f"sandbox {door.sandbox_id} is paused")
    leaf = f"{ARCHIVE_LEAF_PREFIX}{secrets.token_hex(6)}"
    argv, root_fd = _argv(door, command, target, leaf)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=HOST_ENV,
            pass_fds=(root_fd,),
            preexec_fn=door.confine,  # one system call, as for commands
        )
    except OSError as exc:
        door.cgroup.remove_leaf(leaf)
        raise SandboxError(f"cannot start the archive worker: {exc.strerror}") from exc
    return proc, leaf


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM (the worker removes what it staged), then SIGKILL after a grace period."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), TERM_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _replies(raw: bytes) -> list[dict[str, Any]]:
    replies = []
    for line in raw.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                replies.append(value)
    return replies


def _refusal(reply: dict[str, Any], target: str) -> Exception:
    kind, message = reply.get("error"), str(reply.get("message") or "the transfer failed")
    if kind in ("path_rejected", "invalid"):
        return SandboxPathRejected(message) if kind == "path_rejected" else InvalidRequest(message)
    if kind == "no_space" or reply.get("errno") in (errno.ENOSPC, errno.EDQUOT):
        return SandboxFileTooLarge(f"no space left in the sandbox for {target}")
    if kind == "os" and reply.get("errno") in _PATH_ERRNOS:
        return SandboxPathRejected(message)
    return SandboxError(f"cannot transfer {target}: {message}")


def _died(returncode: int, stderr: bytes, target: str) -> Exception:
    message = stderr.decode(errors="replace").strip()
    if message.startswith(JOIN_FAILED):
        return SandboxError(message)
    if returncode == -signal.SIGKILL or "MemoryError" in message:
        # The sandbox's OOM killer chose the worker: its memory is full.
        return SandboxFileTooLarge(f"no memory left in the sandbox for {target}")
    return SandboxError(f"cannot transfer {target}: {message[-500:] or f'exit {returncode}'}")


async def _discard(door: SandboxDoor, staging: str) -> None:
    """Remove what a worker that did not finish left staged (best effort)."""
    with contextlib.suppress(Exception):
        proc, leaf = await _spawn(door, "discard", staging, stdin=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.wait_for(proc.communicate(), FINISH_TIMEOUT_S)
        finally:
            await _stop(proc)
            door.cgroup.remove_leaf(leaf)


async def unpack(door: SandboxDoor, target: str, chunks: AsyncIterator[bytes]) -> ArchiveWritten:
    """Extract the tar stream ``chunks`` into the directory ``target`` (created if missing)."""
    proc, leaf = await _spawn(door, "unpack", target, stdin=asyncio.subprocess.PIPE)
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        accepting = True
        async for chunk in chunks:
            if not accepting or not chunk:
                continue  # refused already: the rest is read only to be able to answer
            try:
                proc.stdin.write(chunk)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                accepting = False
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.close()
        try:
            stdout, stderr = await asyncio.wait_for(
                asyncio.gather(proc.stdout.read(), proc.stderr.read()), FINISH_TIMEOUT_S
            )
        except TimeoutError as exc:
            raise SandboxError(f"extracting into {target} timed out") from exc
        returncode = await proc.wait()
    except BaseException:
        # The caller went away (or the body was too large): cancelled, cleaned up.
        with contextlib.suppress(Exception):
            await asyncio.shield(_stop(proc))
        door.cgroup.remove_leaf(leaf)
        raise
    door.cgroup.remove_leaf(leaf)
    replies = _replies(stdout)
    staged = next((r["staging"] for r in replies if "staging" in r), None)
    final = next((r for r in replies if "staging" not in r), None)
    if final is None:
        if staged is not None:
            await _discard(door, str(staged))
        raise _died(returncode, stderr, target)
    if "error" in final:
        raise _refusal(final, target)
    return ArchiveWritten(
        path=str(final["path"]), files=int(final["files"]), size=int(final["size"])
    )


async def pack(door: SandboxDoor, target: str) -> AsyncIterator[bytes]:
    """The tar stream of directory ``target``; raises ``SandboxError`` if it breaks off."""
    proc, leaf = await _spawn(door, "pack", target, stdin=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stderr is not None
    # Read alongside: skipped files are named there, and a full pipe would stall the worker.
    errors = asyncio.ensure_future(proc.stderr.read())
    try:
        while chunk := await proc.stdout.read(READ_CHUNK):
            yield chunk
        stderr = await asyncio.wait_for(errors, FINISH_TIMEOUT_S)
        returncode = await proc.wait()
    finally:
        errors.cancel()
        with contextlib.suppress(Exception):
            await asyncio.shield(_stop(proc))
        door.cgroup.remove_leaf(leaf)
    if returncode != 0:
        replies = _replies(stderr)
        if replies and "error" in replies[-1]:
            raise _refusal(replies[-1], target)
        raise _died(returncode, stderr, target)
