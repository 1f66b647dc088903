"""Writing an uploaded file's content so that the sandbox pays for it.

Whatever writes a file is charged for the pages it dirties, to its memory
cgroup: the page cache of ``/workspace`` and ``/home/user`` (the sandbox's
disk, reclaimed once written back) and the pages of ``/tmp`` (a tmpfs:
memory for as long as the file exists). Written by the service itself, an
upload would be charged to the service's cgroup, and a tenant could hold
host memory beyond its sandbox's limit (up to its disk size in ``/tmp``).
So the content goes through ``cat``, placed in the sandbox's memory cgroup,
into a file the service opened and confined beforehand: the upload counts
against the sandbox's ``memory`` like anything its commands write.

- An upload to memory (``/tmp``) larger than the sandbox's free memory is
  refused before a byte is written, so it does not wake the OOM killer in
  the sandbox. One to its disk is bounded by the disk alone: the kernel
  writes its cache back and reclaims it within the sandbox's limit.
- ``cat`` runs on the host as root but can only write to the one open file
  it is given as stdout. Should it still run out of memory (racing a
  command), it is the OOM killer's first choice (``oom``).
- On cgroup v1 it joins the memory controller only: a paused sandbox cannot
  freeze it and the sandbox's CPU quota does not slow it. On v2 it joins a
  leaf of the sandbox (one hierarchy), and the driver refuses to pause a
  sandbox while an upload runs.
- The content is streamed into ``cat`` as it arrives (never held whole),
  at most ``max_bytes`` of it; more is ``SandboxFileTooLarge``. The
  transfer is awaited, not run in a worker thread, so slow uploads never
  hold the threads other requests need; each write to ``cat`` is bounded by
  a timeout.

Not here: opening and confining the target file (``filesystem``), reading
a sandbox's memory (``cgroups``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
from collections.abc import AsyncIterator

from runtools.server.domain.errors import SandboxError, SandboxFileTooLarge, SandboxStateConflict
from runtools.server.sandbox.cgroups import SandboxCgroup
from runtools.server.sandbox.enter import HOST_ENV, JOIN_FAILED, join_cgroups_argv
from runtools.server.sandbox.oom import WRITER_SCORE, scored

__all__ = ["UPLOAD_LEAF_PREFIX", "write_charged"]

UPLOAD_LEAF_PREFIX = "upload-"
#: Generous: ``cat`` takes any chunk, or ends, in well under a second.
UPLOAD_TIMEOUT_S = 60.0
#: Left free for the sandbox's own processes when an upload is admitted.
MEMORY_MARGIN = 4 * 1024 * 1024
_WRITER = scored(WRITER_SCORE, ["/bin/cat"])


async def write_charged(
    cgroup: SandboxCgroup,
    fd: int,
    chunks: AsyncIterator[bytes],
    path: str,
    *,
    size: int | None,
    max_bytes: int,
    in_memory: bool,
) -> None:
    """Write ``chunks`` to the open file ``fd`` from a process charged to ``cgroup``.

    ``size`` is what the caller said is coming (None: unknown).
    ``in_memory``: the file is on a tmpfs, so it must fit in the sandbox's
    free memory. Raises ``OSError(ENOSPC)`` when the filesystem is full (the
    caller translates it as for any write), ``SandboxFileTooLarge`` when the
    sandbox's memory is or past ``max_bytes``, ``SandboxStateConflict`` when
    the sandbox is paused.
    """
    if cgroup.is_frozen():
        raise SandboxStateConflict("the sandbox is paused")
    room = max_bytes
    if in_memory:
        try:
            headroom = cgroup.memory_headroom()
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot read the sandbox's memory use: {exc}") from exc
        if (size or 0) > headroom - MEMORY_MARGIN:
            raise SandboxFileTooLarge(f"no memory left in the sandbox for {path}")
        room = min(room, headroom - MEMORY_MARGIN)
    memory_procs = cgroup.memory_procs()
    leaf = None if memory_procs is not None else f"{UPLOAD_LEAF_PREFIX}{secrets.token_hex(6)}"
    procs = [memory_procs] if memory_procs is not None else cgroup.make_leaf(str(leaf))
    try:
        returncode, message = await _run_writer(
            join_cgroups_argv(procs, _WRITER), fd, chunks, path, room, max_bytes
        )
    finally:
        if leaf is not None:
            cgroup.remove_leaf(leaf)
    if returncode == 0:
        return
    if message.startswith(JOIN_FAILED):
        raise SandboxError(message)
    if "No space left" in message:
        raise OSError(errno.ENOSPC, "No space left on device")
    if returncode < 0 or "Cannot allocate memory" in message:
        # Killed by the sandbox's OOM killer, or refused memory: its memory is full.
        raise SandboxFileTooLarge(f"no memory left in the sandbox for {path}")
    raise SandboxError(f"cannot write {path}: {message or f'exit {returncode}'}")


async def _run_writer(
    argv: list[str], fd: int, chunks: AsyncIterator[bytes], path: str, room: int, max_bytes: int
) -> tuple[int, str]:
    try:
        writer = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=fd,
            stderr=asyncio.subprocess.PIPE,
            env=HOST_ENV,
        )
    except OSError as exc:
        raise SandboxError(f"cannot write {path}: {exc.strerror}") from exc
    assert writer.stdin is not None
    assert writer.stderr is not None
    written = 0
    try:
        try:
            async for chunk in chunks:
                written += len(chunk)
                if written > room:
                    if written > max_bytes:
                        raise SandboxFileTooLarge(f"file is larger than {max_bytes} bytes")
                    raise SandboxFileTooLarge(f"no memory left in the sandbox for {path}")
                writer.stdin.write(chunk)
                await asyncio.wait_for(writer.stdin.drain(), UPLOAD_TIMEOUT_S)
            writer.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # cat stopped (a full disk, say): its exit and message tell why
        stderr = await asyncio.wait_for(writer.stderr.read(), UPLOAD_TIMEOUT_S)
        await asyncio.wait_for(writer.wait(), UPLOAD_TIMEOUT_S)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            writer.kill()
        await writer.wait()
        if isinstance(exc, TimeoutError):
            raise SandboxError(f"writing {path} timed out") from exc
        raise
    assert writer.returncode is not None
    return writer.returncode, stderr.decode(errors="replace").strip()
