"""``rt.sandbox``: create, list and get sandboxes; run commands and move files in them.

Every method takes a sandbox's id or its name. :meth:`Sandboxes.create`,
:meth:`~Sandboxes.get` and :meth:`~Sandboxes.list` return
:class:`~runtools.Sandbox` objects whose methods act on that sandbox::

    sb = rt.sandbox.create(name="my-env")
    print(sb.exec("python3 --version").stdout)
    for chunk in sb.exec_stream("npm test"):
        ...                                   # ExecChunk ..., then ExecExit
    sb.files.write("app.py", "print('hi')")
    sb.files.upload_dir("./project", "/workspace/project")   # one tar.gz, streamed
    sb.files.download_dir("/workspace/project/out", "./out")
    sb.pause(); sb.resume(); sb.destroy()

Commands, pause and resume are never retried: a command must not run
twice, and a refusal (``ConflictError``: "resume it first") is final.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import tempfile
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from runtools._archives import pack_directory, unpack_stream
from runtools._exceptions import ExecStreamError
from runtools._models import (
    ExecChunk,
    ExecExit,
    ExecResult,
    FileEntry,
    SandboxInfo,
    SandboxResources,
    SshAccess,
    WrittenArchive,
)
from runtools._pagination import AsyncPager, CursorPage, SyncPager
from runtools._resource import AsyncResource, SyncResource, path_segment

__all__ = [
    "AsyncSandbox",
    "AsyncSandboxFiles",
    "AsyncSandboxes",
    "Sandbox",
    "SandboxFiles",
    "Sandboxes",
]

_PATH = "/sandboxes"
_TAR = "application/x-tar"
_SPOOL_CHUNK = 1024 * 1024
Progress = Callable[[int], None]


def _path(ref: str, suffix: str = "") -> str:
    return f"{_PATH}/{path_segment(ref, name='sandbox')}{suffix}"


def _create_body(
    name: str | None,
    template: str | None,
    tags: Sequence[str] | None,
    env: Mapping[str, str] | None,
    idle_timeout: int | None,
    resources: SandboxResources | Mapping[str, Any] | None,
    project_id: str | None,
    ssh_keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if ssh_keys is not None:
        body["sshKeys"] = list(ssh_keys)
    for key, value in (
        ("name", name),
        ("template", template),
        ("idleTimeout", idle_timeout),
        ("projectId", project_id),
    ):
        if value is not None:
            body[key] = value
    if tags is not None:
        body["tags"] = list(tags)
    if env is not None:
        body["env"] = dict(env)
    if isinstance(resources, SandboxResources):
        body["resources"] = resources.model_dump(include={"vcpus", "memory", "disk"})
    elif resources is not None:
        body["resources"] = dict(resources)
    return body


def _list_params(
    status: str | Sequence[str] | None,
    tags: Sequence[str] | None,
    template: str | None,
    limit: int | None,
    cursor: str | None,
    all: bool,
) -> dict[str, Any]:
    return {
        "status": status if isinstance(status, str) or status is None else ",".join(status),
        "tags": ",".join(tags) if tags else None,
        "template": template,
        "limit": limit,
        "cursor": cursor,
        "all": True if all else None,
    }


def _exec_body(
    command: str, timeout: int | None, cwd: str | None, env: Mapping[str, str] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"command": command}
    if timeout is not None:
        body["timeout"] = timeout
    if cwd is not None:
        body["cwd"] = cwd
    if env is not None:
        body["env"] = dict(env)
    return body


def _exec_event(name: str, payload: dict[str, Any]) -> ExecChunk | ExecExit | None:
    if name in ("stdout", "stderr"):
        return ExecChunk(stream=name, data=str(payload.get("data", "")))
    if name == "exit":
        return ExecExit.model_validate(payload)
    if name == "error":
        found = payload.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        raise ExecStreamError(
            code=error.get("code"),
            message=str(error.get("message") or "The command's stream failed"),
            request_id=error.get("requestId"),
        )
    return None  # an event this client does not know: skip it


def _data(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


# -- sync ---------------------------------------------------------------------


class Sandbox(SandboxInfo):
    """A sandbox, with methods acting on it (the record is as of when it was read)."""

    _sandboxes: Sandboxes | None = PrivateAttr(default=None)

    def _api(self) -> Sandboxes:
        if self._sandboxes is None:
            raise RuntimeError("this Sandbox is not bound to a client")
        return self._sandboxes

    def exec(
        self,
        command: str,
        *,
        timeout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run ``command`` (``/bin/sh -c``) and wait; ``timeout`` in ms (server default 30000)."""
        return self._api().exec(self.id, command, timeout=timeout, cwd=cwd, env=env)

    def exec_stream(
        self,
        command: str,
        *,
        timeout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Iterator[ExecChunk | ExecExit]:
        """Output chunks as the command writes them, then one :class:`ExecExit`."""
        return self._api().exec_stream(self.id, command, timeout=timeout, cwd=cwd, env=env)

    def pause(self) -> Sandbox:
        return self._api().pause(self.id)

    def kill(self) -> Sandbox:
        """Kill every process of its commands; it stays running, with its files."""
        return self._api().kill(self.id)

    def resume(self) -> Sandbox:
        return self._api().resume(self.id)

    def destroy(self) -> Sandbox:
        return self._api().destroy(self.id)

    def refresh(self) -> Sandbox:
        return self._api().get(self.id)

    @property
    def files(self) -> SandboxFiles:
        return SandboxFiles(self._api(), self.id)


class SandboxFiles:
    """Files of one sandbox; paths are absolute or relative to ``/workspace``."""

    def __init__(self, sandboxes: Sandboxes, ref: str) -> None:
        self._sandboxes = sandboxes
        self._ref = ref

    def write(self, path: str, data: str | bytes) -> None:
        self._sandboxes.write_file(self._ref, path, data)

    def read(self, path: str) -> bytes:
        return self._sandboxes.read_file(self._ref, path)

    def list(self, path: str = "/workspace") -> builtins.list[FileEntry]:
        return self._sandboxes.list_files(self._ref, path)

    def write_archive(self, path: str, data: bytes | Iterable[bytes]) -> WrittenArchive:
        return self._sandboxes.write_archive(self._ref, path, data)

    def read_archive(self, path: str = "/workspace") -> Iterator[bytes]:
        return self._sandboxes.read_archive(self._ref, path)

    def upload_dir(
        self, local: str | os.PathLike[str], path: str, *, on_progress: Progress | None = None
    ) -> WrittenArchive:
        return self._sandboxes.upload_dir(self._ref, local, path, on_progress=on_progress)

    def download_dir(self, path: str, local: str | os.PathLike[str]) -> int:
        return self._sandboxes.download_dir(self._ref, path, local)


class Sandboxes(SyncResource):
    def _bind(self, sandbox: Sandbox) -> Sandbox:
        sandbox._sandboxes = self
        return sandbox

    def create(
        self,
        *,
        name: str | None = None,
        template: str | None = None,
        tags: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        idle_timeout: int | None = None,
        resources: SandboxResources | Mapping[str, Any] | None = None,
        project_id: str | None = None,
        ssh_keys: Sequence[str] | None = None,
    ) -> Sandbox:
        """Start a sandbox (``running`` on return). ``resources``: vcpus, memory/disk in MiB.

        ``ssh_keys``: ids of registered SSH keys (``rt.ssh_keys``) let in over
        SSH besides the owner's and the admins' own.
        """
        body = _create_body(
            name, template, tags, env, idle_timeout, resources, project_id, ssh_keys
        )
        envelope = self._client._request("POST", _PATH, json=body, retry=False)
        return self._bind(envelope.model(Sandbox))

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        template: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        all: bool = False,
    ) -> SyncPager[Sandbox]:
        """Your sandboxes (``all=True``: the organization's, admins), newest first."""

        def fetch(page_cursor: str | None) -> CursorPage[Sandbox]:
            params = _list_params(status, tags, template, limit, page_cursor, all)
            page = self._client._request("GET", _PATH, params=params).page(Sandbox)
            for item in page.data:
                self._bind(item)
            return page

        return SyncPager(fetch, cursor=cursor)

    def get(self, sandbox: str) -> Sandbox:
        return self._bind(self._client._request("GET", _path(sandbox)).model(Sandbox))

    def pause(self, sandbox: str) -> Sandbox:
        envelope = self._client._request("POST", _path(sandbox, "/pause"), retry=False)
        return self._bind(envelope.model(Sandbox))

    def kill(self, sandbox: str) -> Sandbox:
        """Kill every process of the sandbox's commands, running or in the background.

        The sandbox stays running with its files: the way back once it is at
        its process limit (a ``ConflictError`` with code ``process_limit_reached``).
        """
        envelope = self._client._request("POST", _path(sandbox, "/kill"), retry=False)
        return self._bind(envelope.model(Sandbox))

    def ssh_access(self, sandbox: str) -> SshAccess:
        """How to reach the sandbox over SSH: host, port, user and an ``ssh`` command line."""
        return self._client._request("GET", _path(sandbox, "/ssh")).model(SshAccess)

    def resume(self, sandbox: str) -> Sandbox:
        envelope = self._client._request("POST", _path(sandbox, "/resume"), retry=False)
        return self._bind(envelope.model(Sandbox))

    def destroy(self, sandbox: str) -> Sandbox:
        return self._bind(self._client._request("DELETE", _path(sandbox)).model(Sandbox))

    def exec(
        self,
        sandbox: str,
        command: str,
        *,
        timeout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        body = _exec_body(command, timeout, cwd, env)
        envelope = self._client._request("POST", _path(sandbox, "/exec"), json=body, retry=False)
        return envelope.model(ExecResult)

    def exec_stream(
        self,
        sandbox: str,
        command: str,
        *,
        timeout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Iterator[ExecChunk | ExecExit]:
        body = _exec_body(command, timeout, cwd, env)
        for name, payload in self._client._events(_path(sandbox, "/exec/stream"), json=body):
            event = _exec_event(name, payload)
            if event is not None:
                yield event

    def write_file(self, sandbox: str, path: str, data: str | bytes) -> None:
        self._client._send(
            "PUT", _path(sandbox, "/files"), params={"path": path}, content=_data(data)
        )

    def read_file(self, sandbox: str, path: str) -> bytes:
        return self._client._send("GET", _path(sandbox, "/files"), params={"path": path}).content

    def list_files(self, sandbox: str, path: str = "/workspace") -> builtins.list[FileEntry]:
        envelope = self._client._request(
            "GET", _path(sandbox, "/files/list"), params={"path": path}
        )
        return [FileEntry.model_validate(item) for item in envelope.data or []]

    def write_archive(
        self, sandbox: str, path: str, data: bytes | Iterable[bytes]
    ) -> WrittenArchive:
        """Unpack a tar (or tar.gz) into directory ``path``; an iterable is streamed."""
        response = self._client._send(
            "PUT",
            _path(sandbox, "/files/archive"),
            params={"path": path},
            content=data,
            content_type=_TAR,
            retry=False,  # a stream cannot be sent twice
        )
        return _written(response.json())

    def read_archive(self, sandbox: str, path: str = "/workspace") -> Iterator[bytes]:
        """Directory ``path`` as a tar stream, in pieces as it comes."""
        return self._client._download(_path(sandbox, "/files/archive"), params={"path": path})

    def upload_dir(
        self,
        sandbox: str,
        local: str | os.PathLike[str],
        path: str,
        *,
        on_progress: Progress | None = None,
    ) -> WrittenArchive:
        """Send the folder ``local``'s content into ``path``, packed as it is read.

        ``on_progress(n)`` is called with each number of file bytes read.
        """
        return self.write_archive(sandbox, path, pack_directory(Path(local), on_read=on_progress))

    def download_dir(self, sandbox: str, path: str, local: str | os.PathLike[str]) -> int:
        """Save directory ``path`` into the folder ``local``; returns the files written.

        Extracted with the ``data`` filter: nothing outside ``local`` is written.
        """
        return unpack_stream(self.read_archive(sandbox, path), Path(local))


# -- async --------------------------------------------------------------------


class AsyncSandbox(SandboxInfo):
    """The asyncio twin of :class:`Sandbox`: same methods, awaited."""

    _sandboxes: AsyncSandboxes | None = PrivateAttr(default=None)

    def _api(self) -> AsyncSandboxes:
        if self._sandboxes is None:
            raise RuntimeError("this AsyncSandbox is not bound to a client")
        return self._sandboxes

    async def exec(
        self,
        command: str,
        *,
        timeout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        return await self._api().exec(self.id, command, timeout=timeout, cwd=cwd, env=env)

    def exec_stream(
        self,
        command: str,
        *,
        timeout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[ExecChunk | ExecExit]:
        return self._api().exec_stream(self.id, command, timeout=timeout, cwd=cwd, env=env)

    async def pause(self) -> AsyncSandbox:
        return await self._api().pause(self.id)

    async def kill(self) -> AsyncSandbox:
        """Kill every process of its commands; it stays running, with its files."""
        return await self._api().kill(self.id)

    async def resume(self) -> AsyncSandbox:
        return await self._api().resume(self.id)

    async def destroy(self) -> AsyncSandbox:
        return await self._api().destroy(self.id)

    async def refresh(self) -> AsyncSandbox:
        return await self._api().get(self.id)

    @property
    def files(self) -> AsyncSandboxFiles:
        return AsyncSandboxFiles(self._api(), self.id)


class AsyncSandboxFiles:
    def __init__(self, sandboxes: AsyncSandboxes, ref: str) -> None:
        self._sandboxes = sandboxes
        self._ref = ref

    async def write(self, path: str, data: str | bytes) -> None:
        await self._sandboxes.write_file(self._ref, path, data)

    async def read(self, path: str) -> bytes:
        return await self._sandboxes.read_file(self._ref, path)

    async def list(self, path: str = "/workspace") -> builtins.list[FileEntry]:
        return await self._sandboxes.list_files(self._ref, path)

    async def write_archive(self, path: str, data: bytes | AsyncIterable[bytes]) -> WrittenArchive:
        return await self._sandboxes.write_archive(self._ref, path, data)

    def read_archive(self, path: str = "/workspace") -> AsyncIterator[bytes]:
        return self._sandboxes.read_archive(self._ref, path)

    async def upload_dir(
        self, local: str | os.PathLike[str], path: str, *, on_progress: Progress | None = None
    ) -> WrittenArchive:
        return await self._sandboxes.upload_dir(self._ref, local, path, on_progress=on_progress)

    async def download_dir(self, path: str, local: str | os.PathLike[str]) -> int:
        return await self._sandboxes.download_dir(self._ref, path, local)


class AsyncSandboxes(AsyncResource):
    def _bind(self, sandbox: AsyncSandbox) -> AsyncSandbox:
        sandbox._sandboxes = self
        return sandbox

    async def create(
        self,
        *,
        name: str | None = None,
        template: str | None = None,
        tags: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        idle_timeout: int | None = None,
        resources: SandboxResources | Mapping[str, Any] | None = None,
        project_id: str | None = None,
        ssh_keys: Sequence[str] | None = None,
    ) -> AsyncSandbox:
        body = _create_body(
            name, template, tags, env, idle_timeout, resources, project_id, ssh_keys
        )
        envelope = await self._client._request("POST", _PATH, json=body, retry=False)
        return self._bind(envelope.model(AsyncSandbox))

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        template: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        all: bool = False,
    ) -> AsyncPager[AsyncSandbox]:
        async def fetch(page_cursor: str | None) -> CursorPage[AsyncSandbox]:
            params = _list_params(status, tags, template, limit, page_cursor, all)
            envelope = await self._client._request("GET", _PATH, params=params)
            page = envelope.page(AsyncSandbox)
            for item in page.data:
                self._bind(item)
            return page

        return AsyncPager(fetch, cursor=cursor)

    async def get(self, sandbox: str) -> AsyncSandbox:
        envelope = await self._client._request("GET", _path(sandbox))
        return self._bind(envelope.model(AsyncSandbox))

    async def pause(self, sandbox: str) -> AsyncSandbox:
        envelope = await self._client._request("POST", _path(sandbox, "/pause"), retry=False)
        return self._bind(envelope.model(AsyncSandbox))

    async def kill(self, sandbox: str) -> AsyncSandbox:
        """Kill every process of the sandbox's commands; see :meth:`Sandboxes.kill`."""
        envelope = await self._client._request("POST", _path(sandbox, "/kill"), retry=False)
        return self._bind(envelope.model(AsyncSandbox))

    async def ssh_access(self, sandbox: str) -> SshAccess:
        """How to reach the sandbox over SSH; see :meth:`Sandboxes.ssh_access`."""
        return (await self._client._request("GET", _path(sandbox, "/ssh"))).model(SshAccess)

    async def resume(self, sandbox: str) -> AsyncSandbox:
        envelope = await self._client._request("POST", _path(sandbox, "/resume"), retry=False)
        return self._bind(envelope.model(AsyncSandbox))

    async def destroy(self, sandbox: str) -> AsyncSandbox:
        envelope = await self._client._request("DELETE", _path(sandbox))
        return self._bind(envelope.model(AsyncSandbox))

    async def exec(
        self,
        sandbox: str,
        command: str,
        *,
        timeout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        body = _exec_body(command, timeout, cwd, env)
        envelope = await self._client._request(
            "POST", _path(sandbox, "/exec"), json=body, retry=False
        )
        return envelope.model(ExecResult)

    async def exec_stream(
        self,
        sandbox: str,
        command: str,
        *,
        timeout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[ExecChunk | ExecExit]:
        body = _exec_body(command, timeout, cwd, env)
        async for name, payload in self._client._events(_path(sandbox, "/exec/stream"), json=body):
            event = _exec_event(name, payload)
            if event is not None:
                yield event

    async def write_file(self, sandbox: str, path: str, data: str | bytes) -> None:
        await self._client._send(
            "PUT", _path(sandbox, "/files"), params={"path": path}, content=_data(data)
        )

    async def read_file(self, sandbox: str, path: str) -> bytes:
        response = await self._client._send("GET", _path(sandbox, "/files"), params={"path": path})
        return response.content

    async def list_files(self, sandbox: str, path: str = "/workspace") -> builtins.list[FileEntry]:
        envelope = await self._client._request(
            "GET", _path(sandbox, "/files/list"), params={"path": path}
        )
        return [FileEntry.model_validate(item) for item in envelope.data or []]

    async def write_archive(
        self, sandbox: str, path: str, data: bytes | AsyncIterable[bytes]
    ) -> WrittenArchive:
        """Unpack a tar (or tar.gz) into directory ``path``; an async iterable is streamed."""
        response = await self._client._send(
            "PUT",
            _path(sandbox, "/files/archive"),
            params={"path": path},
            content=data,
            content_type=_TAR,
            retry=False,  # a stream cannot be sent twice
        )
        return _written(response.json())

    def read_archive(self, sandbox: str, path: str = "/workspace") -> AsyncIterator[bytes]:
        """Directory ``path`` as a tar stream, in pieces as it comes."""
        return self._client._download(_path(sandbox, "/files/archive"), params={"path": path})

    async def upload_dir(
        self,
        sandbox: str,
        local: str | os.PathLike[str],
        path: str,
        *,
        on_progress: Progress | None = None,
    ) -> WrittenArchive:
        """Send the folder ``local``'s content into ``path``, packed as it is read."""
        pieces = pack_directory(Path(local), on_read=on_progress)
        return await self.write_archive(sandbox, path, _in_thread(pieces))

    async def download_dir(self, sandbox: str, path: str, local: str | os.PathLike[str]) -> int:
        """Save directory ``path`` into the folder ``local``; returns the files written.

        The stream is spooled to a temporary file (memory stays flat), then
        extracted in a worker thread with the ``data`` filter.
        """
        with tempfile.TemporaryFile() as spool:
            async for chunk in self.read_archive(sandbox, path):
                await asyncio.to_thread(spool.write, chunk)
            spool.seek(0)
            pieces = iter(lambda: spool.read(_SPOOL_CHUNK), b"")
            return await asyncio.to_thread(unpack_stream, pieces, Path(local))


def _written(body: Any) -> WrittenArchive:
    return WrittenArchive.model_validate(body.get("data") if isinstance(body, dict) else None)


async def _in_thread(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking iterator, read in a worker thread so the event loop never waits on disk."""
    done = object()
    try:
        while (piece := await asyncio.to_thread(next, pieces, done)) is not done:
            yield piece  # type: ignore[misc]
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
