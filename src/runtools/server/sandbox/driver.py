"""The sandbox driver interface and the values that cross it.

The sandbox services talk only to :class:`SandboxDriver`; an implementation
owns isolation, limits and cleanup. Every failure is raised as a class of
``runtools.server.domain.errors``: ``SandboxError`` or one of its kinds
(``SandboxUnavailable``, ``SandboxNotFound``, ``SandboxStateConflict``,
``SandboxProcessLimit``, ``SandboxPathRejected``, ``SandboxFileTooLarge``), or
``InvalidRequest`` for a spec or command it refuses; never as a bare ``OSError``.

Not here: any implementation (``local`` and the modules it uses), or
anything about who owns a sandbox: the driver knows sandboxes by id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_CWD",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_TEMPLATE",
    "DEFAULT_TIMEOUT_MS",
    "ArchiveWritten",
    "ExecChunk",
    "ExecEvent",
    "ExecExit",
    "ExecResult",
    "FileEntry",
    "FileType",
    "ResourceLimits",
    "SandboxDriver",
    "SandboxSession",
    "SandboxSpec",
    "StreamName",
    "TerminalSize",
]

DEFAULT_TEMPLATE = "base-ubuntu"
DEFAULT_CWD = "/workspace"
DEFAULT_TIMEOUT_MS = 60_000
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024

StreamName = Literal["stdout", "stderr"]
FileType = Literal["file", "directory", "symlink", "other"]


@dataclass(frozen=True)
class ResourceLimits:
    """Per-sandbox ceilings; all processes of the sandbox share them."""

    vcpus: float = 1.0
    memory_mib: int = 512
    disk_mib: int = 1024
    pids: int = 256


@dataclass(frozen=True)
class SandboxSpec:
    """What ``create`` needs: the userland, the base environment and the limits."""

    template: str = DEFAULT_TEMPLATE
    env: Mapping[str, str] = field(default_factory=dict)
    resources: ResourceLimits = field(default_factory=ResourceLimits)


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one command. ``exit_code`` is 128+N when killed by signal N."""

    stdout: str
    stderr: str
    exit_code: int
    duration_ms: int
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool


@dataclass(frozen=True)
class ExecChunk:
    """A piece of output, in the order it was read."""

    stream: StreamName
    data: str


@dataclass(frozen=True)
class ExecExit:
    """Last event of a stream: how the command ended."""

    exit_code: int
    duration_ms: int
    timed_out: bool
    stdout_truncated: bool
    stderr_truncated: bool


ExecEvent = ExecChunk | ExecExit


@dataclass(frozen=True)
class FileEntry:
    """One directory entry as seen inside the sandbox (symlinks are not followed)."""

    name: str
    path: str
    type: FileType
    size: int
    modifiedAt: datetime  # wire name, kept identical on purpose


@dataclass(frozen=True)
class ArchiveWritten:
    """What an unpacked archive put into a sandbox: its directory, file count, bytes (``size``)."""

    path: str
    files: int
    size: int


@dataclass(frozen=True)
class TerminalSize:
    """A pseudo-terminal asked for by an interactive session: its type and size."""

    term: str
    columns: int
    rows: int


class SandboxSession(Protocol):
    """An interactive process in a sandbox (an SSH session), from ``open_session``."""

    @property
    def has_terminal(self) -> bool: ...

    async def read(self) -> tuple[StreamName, bytes] | None:
        """The next output, in order; None once every output has ended."""

    async def write(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def resize(self, columns: int, rows: int) -> None: ...

    async def wait(self) -> int:
        """The exit code (128+N when killed by signal N)."""

    async def terminate(self) -> None:
        """Kill its processes; it then ends as killed (137)."""

    async def close(self) -> None:
        """Kill whatever of it is left and free it; safe to call more than once."""


@runtime_checkable
class SandboxDriver(Protocol):
    """Lifecycle, commands and files of isolated sandboxes, keyed by caller-chosen ids."""

    async def check_available(self) -> None:
        """Raise ``SandboxUnavailable`` naming what is missing; never degrade silently."""

    async def create(self, sandbox_id: str, spec: SandboxSpec) -> None:
        """Start a sandbox that lives until ``destroy`` (or until the service dies)."""

    async def exec(
        self,
        sandbox_id: str,
        command: str,
        *,
        cwd: str = DEFAULT_CWD,
        env: Mapping[str, str] | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> ExecResult:
        """Run ``command`` with ``/bin/sh -c``; output is capped per stream.

        ``SandboxProcessLimit`` if the sandbox holds as many processes as it may.
        """

    def exec_stream(
        self,
        sandbox_id: str,
        command: str,
        *,
        cwd: str = DEFAULT_CWD,
        env: Mapping[str, str] | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> AsyncIterator[ExecEvent]:
        """Like ``exec`` but yields ``ExecChunk`` events and a final ``ExecExit``."""

    async def open_session(
        self,
        sandbox_id: str,
        command: str | None,
        *,
        env: Mapping[str, str] | None = None,
        terminal: TerminalSize | None = None,
    ) -> SandboxSession:
        """Start ``command`` (None: a login shell) with stdin, no deadline and no output cap.

        Same isolation, uid and limits as ``exec``; on a pseudo-terminal if
        ``terminal`` is given. Sessions end when the sandbox is paused or destroyed.
        """

    async def pause(self, sandbox_id: str) -> None:
        """Freeze every process of the sandbox (interactive sessions are ended first)."""

    async def resume(self, sandbox_id: str) -> None:
        """Thaw a paused sandbox."""

    async def destroy(self, sandbox_id: str) -> None:
        """Kill everything and remove every trace (processes, cgroups, files)."""

    async def kill_processes(self, sandbox_id: str) -> None:
        """Kill every process of commands (running or in the background); keep the files.

        The sandbox's own processes stay, so it is running and usable again,
        say after a fork bomb filled its process limit.
        """

    async def is_alive(self, sandbox_id: str) -> bool:
        """Whether the sandbox's processes are still running (paused counts as alive)."""

    def joining(self) -> AbstractAsyncContextManager[bool]:
        """Join the service processes that hold these sandboxes; yields whether alone.

        Another process joining meanwhile waits until the block ends.
        """

    def leave(self) -> bool:
        """Stop holding them; whether this process was the last that did."""

    async def write_file(
        self,
        sandbox_id: str,
        path: str,
        data: bytes | AsyncIterator[bytes],
        *,
        size: int | None = None,
    ) -> str:
        """Create or replace a file (parents are created) inside the sandbox.

        ``data`` may come as chunks, written as they arrive (``size``: how many
        bytes are announced, None if unknown). A write that fails, part way
        included, leaves no new file and any old one whole. Returns the
        absolute path written (a relative ``path`` starts at the workspace),
        as listings name files.
        """

    async def read_file(self, sandbox_id: str, path: str) -> bytes:
        """Return a regular file's content."""

    async def list_files(self, sandbox_id: str, path: str) -> list[FileEntry]:
        """List a directory, sorted by name."""

    async def write_archive(
        self, sandbox_id: str, path: str, chunks: AsyncIterator[bytes]
    ) -> ArchiveWritten:
        """Extract a tar stream (plain or compressed) into directory ``path``.

        All or nothing: an archive with a member it refuses (absolute name,
        ``..``, a link pointing out, a device) leaves no file behind.
        """

    async def read_archive(self, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        """The tar stream of directory ``path``, checked before the first byte."""

    async def reap_orphans(self, known_ids: set[str]) -> list[str]:
        """Destroy sandboxes left by an earlier run that are not in ``known_ids``."""
