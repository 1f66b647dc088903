"""Commands and files: what goes into a running sandbox and what comes out.

Every use is checked first by the sandbox service (visible to the caller,
usable in its current status, on this node), counts as activity (a busy
sandbox is never idle) and, for commands, is audited with the command cut
short and the environment's names, never its output or values. A driver's
complaint about the sandbox's state becomes a 409 that says what to do; so
does a sandbox at its process limit, which ``kill_processes`` recovers.

Not here: the lifecycle and its records (``service``: this module never
opens a transaction), how a command is confined (the driver), HTTP or SSE
framing (the routers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio

from runtools.server.domain.audit import RequestContext
from runtools.server.domain.errors import (
    SandboxNotFound,
    SandboxProcessLimit,
    SandboxStateConflict,
)
from runtools.server.domain.principal import Principal
from runtools.server.sandbox.driver import (
    ArchiveWritten,
    ExecEvent,
    ExecExit,
    ExecResult,
    FileEntry,
)
from runtools.server.services.sandboxes.records import ExecRequest, SandboxView
from runtools.server.services.sandboxes.service import SandboxService
from runtools.server.services.sandboxes.states import Action

__all__ = ["SandboxIO"]

T = TypeVar("T")


class SandboxIO:
    def __init__(self, sandboxes: SandboxService, *, max_output_bytes: int) -> None:
        self._sandboxes = sandboxes
        self._driver = sandboxes.driver
        self._max_output_bytes = max_output_bytes

    # -- commands --------------------------------------------------------------

    async def exec(
        self, caller: Principal, ref: str, request: ExecRequest, *, context: RequestContext
    ) -> ExecResult:
        view = await self._sandboxes.ready(caller, ref, Action.EXEC)
        with self._sandboxes.in_use(view.id):
            try:
                result = await self._command(self._driver.exec, view, request)
            except SandboxProcessLimit as exc:
                raise _at_limit(view, exc) from exc
            except (SandboxStateConflict, SandboxNotFound) as exc:
                raise await self._sandboxes.explain(view, exc) from exc
        await self._sandboxes.record_exec(
            caller, view, request, result.exit_code, result.timed_out, context
        )
        return result

    async def exec_stream(
        self, caller: Principal, ref: str, request: ExecRequest, *, context: RequestContext
    ) -> AsyncIterator[ExecEvent]:
        """Checked now (so errors come before any output), then streamed."""
        view = await self._sandboxes.ready(caller, ref, Action.EXEC)
        try:
            events = self._command(self._driver.exec_stream, view, request)
        except SandboxProcessLimit as exc:
            raise _at_limit(view, exc) from exc
        except (SandboxStateConflict, SandboxNotFound) as exc:
            raise await self._sandboxes.explain(view, exc) from exc
        return self._follow(caller, view, request, events, context)

    def _command(self, run: Callable[..., T], view: SandboxView, request: ExecRequest) -> T:
        """``run`` (the driver's ``exec`` or ``exec_stream``) with the request's command."""
        return run(
            view.id,
            request.command,
            cwd=request.cwd,
            env=request.env,
            timeout_ms=request.timeout_ms,
            max_output_bytes=self._max_output_bytes,
        )

    async def _follow(
        self,
        caller: Principal,
        view: SandboxView,
        request: ExecRequest,
        events: AsyncIterator[ExecEvent],
        context: RequestContext,
    ) -> AsyncIterator[ExecEvent]:
        ended: ExecExit | None = None
        with self._sandboxes.in_use(view.id):
            try:
                async for event in events:
                    if isinstance(event, ExecExit):
                        ended = event
                    yield event
            except SandboxProcessLimit as exc:  # filled up while the command got in
                raise _at_limit(view, exc) from exc
            finally:
                # Shielded: when the client goes away this runs inside a
                # cancelled scope, and the command must still be killed and
                # the exec still audited.
                with anyio.CancelScope(shield=True):
                    closer = getattr(events, "aclose", None)
                    if closer is not None:
                        await closer()
                    await self._sandboxes.record_exec(
                        caller,
                        view,
                        request,
                        ended.exit_code if ended else None,
                        ended.timed_out if ended else False,
                        context,
                    )

    async def kill_processes(
        self, caller: Principal, ref: str, *, context: RequestContext
    ) -> SandboxView:
        """Kill every process of the sandbox's commands; the sandbox and its files stay."""
        view = await self._sandboxes.ready(caller, ref, Action.KILL)
        with self._sandboxes.in_use(view.id):
            try:
                await self._driver.kill_processes(view.id)
            except (SandboxStateConflict, SandboxNotFound) as exc:
                raise await self._sandboxes.explain(view, exc) from exc
        return await self._sandboxes.record_kill(caller, view, context)

    # -- files -----------------------------------------------------------------

    async def _files(self, caller: Principal, ref: str, op: Callable[[str], Awaitable[Any]]) -> Any:
        view = await self._sandboxes.ready(caller, ref, Action.FILES)
        with self._sandboxes.in_use(view.id):
            return await self._explained(view, op)

    async def _explained(self, view: SandboxView, op: Callable[[str], Awaitable[Any]]) -> Any:
        try:
            return await op(view.id)
        except SandboxStateConflict as exc:
            raise await self._sandboxes.explain(view, exc) from exc
        except SandboxNotFound as exc:
            if await self._driver.is_alive(view.id):
                raise  # a missing file, not a missing sandbox
            raise await self._sandboxes.explain(view, exc) from exc

    async def write_file(
        self,
        caller: Principal,
        ref: str,
        path: str,
        data: bytes | AsyncIterator[bytes],
        *,
        size: int | None = None,
    ) -> str:
        """The file written, by its absolute path; chunks are written as they come."""
        written: str = await self._files(
            caller, ref, lambda sid: self._driver.write_file(sid, path, data, size=size)
        )
        return written

    async def read_file(self, caller: Principal, ref: str, path: str) -> bytes:
        data: bytes = await self._files(caller, ref, lambda sid: self._driver.read_file(sid, path))
        return data

    async def write_archive(
        self, caller: Principal, ref: str, path: str, chunks: AsyncIterator[bytes]
    ) -> ArchiveWritten:
        """Unpack a tar stream into directory ``path``: all of it, or nothing."""
        written: ArchiveWritten = await self._files(
            caller, ref, lambda sid: self._driver.write_archive(sid, path, chunks)
        )
        return written

    async def read_archive(self, caller: Principal, ref: str, path: str) -> AsyncIterator[bytes]:
        """Checked now (so errors come before any byte), then streamed."""
        view = await self._sandboxes.ready(caller, ref, Action.FILES)
        with self._sandboxes.in_use(view.id):
            stream: AsyncIterator[bytes] = await self._explained(
                view, lambda sid: self._driver.read_archive(sid, path)
            )
        return self._busy_while(view.id, stream)

    async def _busy_while(
        self, sandbox_id: str, stream: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        # A long download is activity: the sandbox is not paused as idle under it.
        with self._sandboxes.in_use(sandbox_id):
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                with anyio.CancelScope(shield=True):
                    closer = getattr(stream, "aclose", None)
                    if closer is not None:
                        await closer()

    async def list_files(self, caller: Principal, ref: str, path: str) -> list[FileEntry]:
        entries: list[FileEntry] = await self._files(
            caller, ref, lambda sid: self._driver.list_files(sid, path)
        )
        return entries


def _at_limit(view: SandboxView, exc: SandboxProcessLimit) -> SandboxProcessLimit:
    """The driver's refusal, saying how to get the sandbox back."""
    ref = view.name or view.id
    limit = f"its limit of {exc.limit} processes" if exc.limit else "its process limit"
    return SandboxProcessLimit(
        f"Sandbox {ref} is at {limit}, so no command can start. Kill its processes with "
        f"POST /v1/sandboxes/{ref}/kill (CLI: runtools sandbox kill {ref}); its files are "
        "kept. Or destroy it.",
        limit=exc.limit,
    )
