"""``rt.sandbox``: create, list and get sandboxes; run commands and move files in them.

Every method takes a sandbox's id or its name. :meth:`Sandboxes.create`,
:meth:`~Sandboxes.get` and :meth:`~Sandboxes.list` return
:class:`~runtools.Sandbox` objects whose methods act on that sandbox::

    sb = rt.sandbox.create(name="my-env")
    print(sb.exec("python3 --version").stdout)
    for chunk in sb.exec_stream("npm test"):
        ...                                   # ExecChunk ..., then ExecExit
    sb.files.write("app.py", "print('hi')")
    sb.pause(); sb.resume(); sb.destroy()

Commands, pause and resume are never retried: a command must not run
twice, and a refusal (``ConflictError``: "resume it first") is final.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from pydantic import PrivateAttr

from runtools._exceptions import ExecStreamError
from runtools._models import (
    ExecChunk,
    ExecExit,
    ExecResult,
    FileEntry,
    SandboxInfo,
    SandboxResources,
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
) -> dict[str, Any]:
    body: dict[str, Any] = {}
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
    ) -> Sandbox:
        """Start a sandbox (``running`` on return). ``resources``: vcpus, memory/disk in MiB."""
        body = _create_body(name, template, tags, env, idle_timeout, resources, project_id)
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
    ) -> AsyncSandbox:
        body = _create_body(name, template, tags, env, idle_timeout, resources, project_id)
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
