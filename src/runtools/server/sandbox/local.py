"""``LocalSandboxDriver``: Linux namespaces (bubblewrap + nsenter) and cgroups.

See the package docstring for the isolation design. This module only ties
the pieces together: lifecycle, locking, error translation.

Not here: the command line of a sandbox (``layout``) or of a command
(``enter``), cgroup files (``cgroups``), path resolution (``filesystem``),
the on-disk record (``state``): each has its module, and this one calls them.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TypeVar

from runtools.server.domain.errors import (
    InvalidRequest,
    SandboxError,
    SandboxNotFound,
    SandboxStateConflict,
    SandboxUnavailable,
)
from runtools.server.sandbox.cgroups import CgroupHost, SandboxCgroup, detect_host
from runtools.server.sandbox.charged_write import write_charged
from runtools.server.sandbox.driver import (
    DEFAULT_CWD,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_TIMEOUT_MS,
    ExecChunk,
    ExecEvent,
    ExecExit,
    ExecResult,
    FileEntry,
    ResourceLimits,
    SandboxSpec,
    StreamName,
)
from runtools.server.sandbox.enter import (
    HOST_ENV,
    JOIN_FAILED,
    check_env,
    exec_argv,
    join_cgroups_argv,
    open_namespaces,
)
from runtools.server.sandbox.filesystem import ConfinedFiles
from runtools.server.sandbox.identity import ProcessRef, open_process, start_time
from runtools.server.sandbox.identity import is_alive as process_is_alive
from runtools.server.sandbox.layout import (
    HOME,
    WORKSPACE,
    WRITABLE_ROOTS,
    base_env,
    bwrap_argv,
    check_template,
    etc_files,
    init_argv,
)
from runtools.server.sandbox.oom import COMMAND_SCORE, scored
from runtools.server.sandbox.output import Leftovers
from runtools.server.sandbox.process import Exited, Output, follow, spawn
from runtools.server.sandbox.state import SANDBOX_ID, SandboxState, StateStore

__all__ = ["LocalSandboxDriver"]

T = TypeVar("T")

INIT_LEAF = "init"
EXEC_LEAF_PREFIX = "exec-"
# Host programs the driver runs as root; the sandbox side uses its own
# userland (setpriv, env, sleep, sh), which for base-ubuntu is the host's.
HOST_TOOLS = {"bwrap": "bubblewrap (bwrap)", "nsenter": "util-linux nsenter"}
SANDBOX_TOOLS = {
    "/bin/sh": "a POSIX shell (/bin/sh)",
    "/usr/bin/setpriv": "util-linux setpriv",
    "/usr/bin/env": "coreutils env",
    init_argv()[0]: "coreutils sleep",
}
PROBE_TIMEOUT_S = 10.0
EXEC_KILL_TIMEOUT_S = 1.0


def _driver_key(root: Path) -> str:
    """Separates the cgroups of drivers with different roots on one host."""
    return hashlib.sha256(str(root).encode()).hexdigest()[:12]


class LocalSandboxDriver:
    """Sandboxes as namespaced process trees on this host. Requires root.

    ``root`` is the driver's private state directory; nothing of it is
    visible inside sandboxes. Sandbox processes run as host uids
    ``uid_base .. uid_base+max_sandboxes-1`` (one per sandbox), which should
    be reserved for this purpose on the host.
    """

    def __init__(
        self,
        root: Path,
        *,
        uid_base: int = 200_000,
        max_sandboxes: int = 10_000,
        max_file_bytes: int = 64 * 1024 * 1024,
        max_list_entries: int = 10_000,
        startup_timeout_s: float = 10.0,
    ) -> None:
        self._root = Path(os.path.abspath(root))
        self._store = StateStore(self._root)
        self._uid_base = uid_base
        self._max_sandboxes = max_sandboxes
        self._max_file_bytes = max_file_bytes
        self._max_list_entries = max_list_entries
        self._startup_timeout_s = startup_timeout_s
        self._tools: dict[str, str] = {}
        self._cgroups: CgroupHost | None = None
        self._bwraps: dict[str, subprocess.Popen[bytes]] = {}
        # Uploads being written, per sandbox: such a sandbox is not paused.
        self._uploads: Counter[str] = Counter()
        self._locks: dict[str, asyncio.Lock] = {}
        self._leftovers = Leftovers()

    # -- availability ------------------------------------------------------

    async def check_available(self) -> None:
        if self._cgroups is not None:
            return
        if os.geteuid() != 0:
            raise SandboxUnavailable("the sandbox driver must run as root")
        tools: dict[str, str] = {}
        for name, what in HOST_TOOLS.items():
            found = shutil.which(name, path=HOST_ENV["PATH"])
            if found is None:
                raise SandboxUnavailable(f"{what} is not installed")
            tools[name] = found
        for path, what in SANDBOX_TOOLS.items():
            if not os.access(path, os.X_OK):
                raise SandboxUnavailable(f"{what} is not installed ({path} is missing)")
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError) as exc:
            raise SandboxUnavailable("the kernel does not support pidfds (Linux 5.3+)") from exc
        cgroups = detect_host(_driver_key(self._root))
        await asyncio.to_thread(cgroups.prepare)
        await self._probe_namespaces(tools["bwrap"])
        try:
            self._store.prepare()
        except OSError as exc:
            raise SandboxUnavailable(f"cannot create state directory {self._root}: {exc}") from exc
        self._tools = tools
        self._cgroups = cgroups

    async def _probe_namespaces(self, bwrap: str) -> None:
        """Start a throw-away sandbox: kernels or containers may forbid namespaces."""
        argv = bwrap_argv(bwrap, SandboxSpec(), etc_fds={}, info_fd=None, command=["/bin/true"])
        try:
            result = await asyncio.to_thread(
                subprocess.run,
                argv,
                env=HOST_ENV,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap cannot be run: {exc}") from exc
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip()
            raise SandboxUnavailable(f"bubblewrap cannot create namespaces: {message}")

    def _host(self) -> CgroupHost:
        if self._cgroups is None:
            raise SandboxUnavailable("check_available() has not succeeded")
        return self._cgroups

    # -- lookup helpers ----------------------------------------------------

    def _lock(self, sandbox_id: str) -> asyncio.Lock:
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    def _state(self, sandbox_id: str) -> SandboxState:
        state = self._store.load(sandbox_id)
        if state is None or state.init is None:
            raise SandboxNotFound(f"sandbox {sandbox_id} not found")
        return state

    def _open_init(self, state: SandboxState) -> int:
        """A verified ``/proc/<pid>`` fd of the sandbox's PID 1."""
        fd = None if state.init is None else open_process(state.init)
        if fd is None:
            raise SandboxStateConflict(f"sandbox {state.sandbox_id} is not running")
        return fd

    def _running(self, sandbox_id: str) -> SandboxState:
        state = self._state(sandbox_id)
        if state.init is None or not process_is_alive(state.init):
            raise SandboxStateConflict(f"sandbox {sandbox_id} is not running")
        return state

    # -- lifecycle ---------------------------------------------------------

    async def create(self, sandbox_id: str, spec: SandboxSpec) -> None:
        if not SANDBOX_ID.fullmatch(sandbox_id):
            raise InvalidRequest(f"invalid sandbox id {sandbox_id!r}")
        check_template(spec.template)
        check_env(spec.env)
        _check_limits(spec.resources)
        await self.check_available()
        host = self._host()
        async with self._lock(sandbox_id):
            if host.layout(sandbox_id).exists():
                raise SandboxStateConflict(f"sandbox {sandbox_id} already exists")
            self._store.create_dir(sandbox_id)
            state: SandboxState | None = None
            try:
                uid = self._store.allocate_uid(sandbox_id, self._uid_base, self._max_sandboxes)
                state = SandboxState(sandbox_id, uid, uid, host.layout(sandbox_id), dict(spec.env))
                # Recorded before anything is started, so a crash mid-way is reaped.
                self._store.save(state)
                state.cgroup = host.create(sandbox_id, spec.resources)
                state.init = await self._start(state, spec)
                self._store.save(state)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._teardown(sandbox_id, state))
                raise

    async def _start(self, state: SandboxState, spec: SandboxSpec) -> ProcessRef:
        """Start bubblewrap in the sandbox's cgroups; return its PID 1 once ready."""
        etc_fds: dict[str, int] = {}
        info_r, info_w = os.pipe2(os.O_CLOEXEC)
        log_path = self._store.dir(state.sandbox_id) / "bwrap.log"
        try:
            for path, content in etc_files(state.uid, state.gid).items():
                fd = os.memfd_create("etc", 0)
                os.write(fd, content)
                os.lseek(fd, 0, os.SEEK_SET)
                etc_fds[path] = fd
            argv = bwrap_argv(self._tools["bwrap"], spec, etc_fds=etc_fds, info_fd=info_w)
            procs = state.cgroup.make_leaf(INIT_LEAF)
            # Started on the event loop's own thread, never a worker's:
            # --die-with-parent ties the sandbox's life to this process, but the
            # kernel signals it when the *thread* that forked bwrap exits
            # (PR_SET_PDEATHSIG), and a pool's idle worker does exit. Creating
            # an empty local file and forking take a moment, not a wait.
            with open(log_path, "wb") as log:  # noqa: ASYNC230 - see above
                # start_new_session: bwrap's --new-session covers the command,
                # this covers bwrap itself.
                proc = subprocess.Popen(  # noqa: S603, ASYNC220 - fixed argv, no shell; see above
                    join_cgroups_argv(procs, argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=HOST_ENV,
                    pass_fds=(*etc_fds.values(), info_w),
                    close_fds=True,
                    start_new_session=True,
                )
        except OSError as exc:
            os.close(info_r)
            raise SandboxError(f"cannot start sandbox {state.sandbox_id}: {exc}") from exc
        finally:
            os.close(info_w)
            for fd in etc_fds.values():
                os.close(fd)
        self._bwraps[state.sandbox_id] = proc
        try:
            pid1 = await self._read_child_pid(info_r, proc)
            await self._wait_ready(state.cgroup, pid1, proc, log_path)
        finally:
            os.close(info_r)
        started = start_time(pid1)
        if started is None:
            raise SandboxError(f"sandbox {state.sandbox_id} exited during startup")
        ref = ProcessRef(pid1, started)
        await asyncio.to_thread(self._chown_private_dirs, ref, state)
        return ref

    async def _read_child_pid(self, fd: int, proc: subprocess.Popen[bytes]) -> int:
        """bwrap writes one JSON object with the host pid of the sandbox's PID 1."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout_s
        os.set_blocking(fd, False)
        data = b""
        while loop.time() < deadline:
            with contextlib.suppress(BlockingIOError):
                chunk = os.read(fd, 4096)
                data += chunk
                with contextlib.suppress(ValueError):
                    return int(json.loads(data)["child-pid"])
                if not chunk:
                    break
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.005)
        raise SandboxError("sandbox did not start: bubblewrap reported no PID 1")

    async def _wait_ready(
        self, cgroup: SandboxCgroup, pid1: int, proc: subprocess.Popen[bytes], log_path: Path
    ) -> None:
        """Ready once PID 1's child has exec'd the init program (mounts are done)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout_s
        init_name = os.path.basename(init_argv()[0])
        while loop.time() < deadline:
            if proc.poll() is not None:
                log = await asyncio.to_thread(log_path.read_text, errors="replace")
                message = log.strip()[-2000:]
                raise SandboxError(f"sandbox failed to start: {message or 'bubblewrap exited'}")
            for pid in cgroup.pids(INIT_LEAF):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    # procfs answers from kernel memory: this never waits on a disk.
                    stat = Path(f"/proc/{pid}/stat").read_text()  # noqa: ASYNC240
                    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
                    ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                    if ppid == pid1 and comm == init_name:
                        return
            await asyncio.sleep(0.005)
        raise SandboxError("sandbox did not become ready in time")

    def _chown_private_dirs(self, ref: ProcessRef, state: SandboxState) -> None:
        """Hand ``/workspace`` and the home directory to the sandbox user."""
        proc_fd = open_process(ref)
        if proc_fd is None:
            raise SandboxError(f"sandbox {state.sandbox_id} exited during startup")
        try:
            root_fd = os.open("root", os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc_fd)
            try:
                for path in (WORKSPACE, HOME):
                    fd = root_fd
                    for part in path.strip("/").split("/"):
                        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                        next_fd = os.open(part, flags, dir_fd=fd)
                        if fd != root_fd:
                            os.close(fd)
                        fd = next_fd
                    os.fchown(fd, state.uid, state.gid)
                    os.close(fd)
            finally:
                os.close(root_fd)
        except OSError as exc:
            raise SandboxError(f"cannot prepare sandbox {state.sandbox_id}: {exc}") from exc
        finally:
            os.close(proc_fd)

    async def pause(self, sandbox_id: str) -> None:
        async with self._lock(sandbox_id):
            state = self._running(sandbox_id)
            if self._uploads[sandbox_id]:
                # On cgroup v2 a frozen sandbox would freeze the upload's writer too.
                raise SandboxStateConflict(
                    f"a file is being uploaded to sandbox {sandbox_id}; pause it once done"
                )
            if not await state.cgroup.freeze():
                await state.cgroup.thaw()
                raise SandboxError(f"sandbox {sandbox_id} could not be frozen")

    async def resume(self, sandbox_id: str) -> None:
        async with self._lock(sandbox_id):
            state = self._running(sandbox_id)
            if not await state.cgroup.thaw():
                raise SandboxError(f"sandbox {sandbox_id} could not be thawed")

    async def destroy(self, sandbox_id: str) -> None:
        await self.check_available()
        async with self._lock(sandbox_id):
            state = self._store.load(sandbox_id)
            known = state is not None or (
                SANDBOX_ID.fullmatch(sandbox_id) is not None
                and self._host().layout(sandbox_id).exists()
            )
            if not known:
                raise SandboxNotFound(f"sandbox {sandbox_id} not found")
            await self._teardown(sandbox_id, state)
        self._locks.pop(sandbox_id, None)

    async def _teardown(self, sandbox_id: str, state: SandboxState | None) -> None:
        """Kill every process, then remove cgroups, state and the uid reservation."""
        layouts = [self._host().layout(sandbox_id)]
        if state is not None and state.cgroup != layouts[0]:
            layouts.append(state.cgroup)  # recorded under an earlier own cgroup
        # PID 1 first: the kernel then kills its whole PID namespace and
        # bubblewrap reaps it, so nothing is orphaned to the host's init.
        if state is not None and state.init is not None:
            _kill_verified(state.init)
        for cgroup in layouts:
            if cgroup.is_frozen():
                await cgroup.thaw()  # frozen processes die only once thawed
        proc = self._bwraps.pop(sandbox_id, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 5.0)
        # Then whatever is left (commands still being entered, lost PID 1).
        gone = True
        for cgroup in layouts:
            gone = await cgroup.kill() and gone
        if not gone:
            raise SandboxError(f"processes of sandbox {sandbox_id} could not be killed")
        for cgroup in layouts:
            await cgroup.remove()
        self._store.remove(sandbox_id)
        if state is not None:
            self._store.release_uid(state.uid, sandbox_id)

    def _reap_exited_bwraps(self) -> None:
        # bubblewrap is our child; once its sandbox is gone it must be waited
        # for even if another driver instance did the teardown.
        for sandbox_id, proc in list(self._bwraps.items()):
            if proc.poll() is not None:
                del self._bwraps[sandbox_id]

    async def is_alive(self, sandbox_id: str) -> bool:
        self._reap_exited_bwraps()
        state = self._store.load(sandbox_id)
        return state is not None and state.init is not None and process_is_alive(state.init)

    async def reap_orphans(self, known_ids: set[str]) -> list[str]:
        await self.check_available()
        reaped = []
        for sandbox_id in sorted((self._store.ids() | self._host().existing_ids()) - known_ids):
            async with self._lock(sandbox_id):
                await self._teardown(sandbox_id, self._store.load(sandbox_id))
            self._locks.pop(sandbox_id, None)
            reaped.append(sandbox_id)
        live = self._store.ids()
        self._store.release_uids_except(live)
        self._reap_exited_bwraps()
        if not live and not self._host().existing_ids():
            # Nothing left: leave no empty cgroup directories behind either.
            # The next use prepares them again.
            self._host().remove_if_empty()
            self._cgroups = None
        return reaped

    # -- commands ----------------------------------------------------------

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
        state = self._prepare_exec(sandbox_id, env, timeout_ms, max_output_bytes)
        out: dict[StreamName, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        events = self._run(state, command, cwd, env, timeout_ms, max_output_bytes)
        # aclosing: clean-up (pipes, the command's cgroup) runs before returning.
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Output):
                    out[event.stream] += event.data
                else:
                    return ExecResult(
                        stdout=out["stdout"].decode(errors="replace"),
                        stderr=out["stderr"].decode(errors="replace"),
                        exit_code=event.exit_code,
                        duration_ms=event.duration_ms,
                        stdout_truncated=event.stdout_truncated,
                        stderr_truncated=event.stderr_truncated,
                        timed_out=event.timed_out,
                    )
        raise SandboxError("command ended without an exit status")  # pragma: no cover

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
        # Checked now, not at first iteration, so the caller can answer with
        # an error status before it starts streaming.
        state = self._prepare_exec(sandbox_id, env, timeout_ms, max_output_bytes)
        return self._stream(state, command, cwd, env, timeout_ms, max_output_bytes)

    async def _stream(
        self,
        state: SandboxState,
        command: str,
        cwd: str,
        env: Mapping[str, str] | None,
        timeout_ms: int,
        max_output_bytes: int,
    ) -> AsyncIterator[ExecEvent]:
        decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")(errors="replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")(errors="replace"),
        }
        events = self._run(state, command, cwd, env, timeout_ms, max_output_bytes)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Output):
                    text = decoders[event.stream].decode(event.data)
                    if text:
                        yield ExecChunk(stream=event.stream, data=text)
                    continue
                for stream in ("stdout", "stderr"):
                    tail = decoders[stream].decode(b"", final=True)
                    if tail:
                        name: StreamName = "stdout" if stream == "stdout" else "stderr"
                        yield ExecChunk(stream=name, data=tail)
                yield ExecExit(
                    exit_code=event.exit_code,
                    duration_ms=event.duration_ms,
                    timed_out=event.timed_out,
                    stdout_truncated=event.stdout_truncated,
                    stderr_truncated=event.stderr_truncated,
                )
                return

    def _prepare_exec(
        self,
        sandbox_id: str,
        env: Mapping[str, str] | None,
        timeout_ms: int,
        max_output_bytes: int,
    ) -> SandboxState:
        if timeout_ms <= 0:
            raise InvalidRequest("timeout_ms must be positive")
        if max_output_bytes < 0:
            raise InvalidRequest("max_output_bytes must not be negative")
        check_env(env or {})
        state = self._running(sandbox_id)
        if state.cgroup.is_frozen():
            raise SandboxStateConflict(f"sandbox {sandbox_id} is paused")
        return state

    async def _run(
        self,
        state: SandboxState,
        command: str,
        cwd: str,
        env: Mapping[str, str] | None,
        timeout_ms: int,
        max_output_bytes: int,
    ) -> AsyncGenerator[Output | Exited, None]:
        await self.check_available()  # a driver built after a restart starts unchecked
        cgroup = state.cgroup
        leaf = f"{EXEC_LEAF_PREFIX}{secrets.token_hex(6)}"
        proc_fd = self._open_init(state)
        try:
            fds = open_namespaces(proc_fd)
        except OSError as exc:
            raise SandboxStateConflict(f"sandbox {state.sandbox_id} is not running") from exc
        finally:
            os.close(proc_fd)
        try:
            argv = exec_argv(
                nsenter=self._tools["nsenter"],
                fds=fds,
                uid=state.uid,
                gid=state.gid,
                cwd=cwd,
                env={**base_env(), **state.env, **(env or {})},
                command=command,
            )
            # Leaves of finished commands whose background processes exited.
            cgroup.sweep_leaves(EXEC_LEAF_PREFIX)
            procs = cgroup.make_leaf(leaf)
            try:
                child = spawn(join_cgroups_argv(procs, scored(COMMAND_SCORE, argv)), env=HOST_ENV)
            except OSError as exc:
                cgroup.remove_leaf(leaf)
                raise SandboxError(f"cannot run command: {exc}") from exc
        except BaseException:
            fds.close()
            raise

        async def kill() -> None:
            # Everything but nsenter first: nsenter then reaps its child (the
            # command's top process) and exits by itself. Killed together,
            # that child would be orphaned to the host's init - the reaper is
            # chosen by the parent's PID namespace - and until reaped there it
            # holds the sandbox's PID namespace and cgroup busy.
            await cgroup.kill(leaf, timeout_s=EXEC_KILL_TIMEOUT_S, spare=child.proc.pid)
            await _wait_exited(child.proc.pid, EXEC_KILL_TIMEOUT_S)
            await cgroup.kill(leaf, timeout_s=EXEC_KILL_TIMEOUT_S)

        first_stderr = True
        events = follow(
            child,
            timeout_s=timeout_ms / 1000,
            max_output_bytes=max_output_bytes,
            kill=kill,
            leftovers=self._leftovers,
        )
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, Output) and event.stream == "stderr" and first_stderr:
                        first_stderr = False
                        if event.data.startswith(JOIN_FAILED.encode()):
                            raise SandboxError(event.data.decode(errors="replace").strip())
                    yield event
                    if isinstance(event, Exited):
                        return
        finally:
            # nsenter opens them by path; they must outlive its start.
            fds.close()
            # Stays if background processes still live in it; swept later.
            cgroup.remove_leaf(leaf)

    # -- files -------------------------------------------------------------

    async def write_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        # Resolved and opened in a thread (path-safe, quick), filled by a process the
        # sandbox is charged for (awaited: a slow upload holds no thread), renamed.
        state = self._state(sandbox_id)
        pending = await self._files(sandbox_id, lambda files: files.prepare_write(path, len(data)))
        self._uploads[sandbox_id] += 1
        try:
            with pending.filling() as fd:
                await write_charged(state.cgroup, fd, data, pending.path)
        finally:
            self._uploads[sandbox_id] -= 1
            if not self._uploads[sandbox_id]:
                del self._uploads[sandbox_id]
        await asyncio.to_thread(pending.commit)

    async def read_file(self, sandbox_id: str, path: str) -> bytes:
        return await self._files(sandbox_id, lambda files: files.read(path))

    async def list_files(self, sandbox_id: str, path: str) -> list[FileEntry]:
        return await self._files(sandbox_id, lambda files: files.listdir(path))

    async def _files(self, sandbox_id: str, op: Callable[[ConfinedFiles], T]) -> T:
        state = self._state(sandbox_id)
        return await asyncio.to_thread(self._with_files, state, op)

    def _with_files(self, state: SandboxState, op: Callable[[ConfinedFiles], T]) -> T:
        # The sandbox's root as seen by its PID 1: its own mount namespace,
        # so the tmpfs mounts are reachable without any host-side mount.
        proc_fd = self._open_init(state)
        try:
            root_fd = os.open("root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc_fd)
        except OSError as exc:
            raise SandboxStateConflict(f"sandbox {state.sandbox_id} is not running") from exc
        finally:
            os.close(proc_fd)
        try:
            return op(
                ConfinedFiles(
                    root_fd,
                    roots=WRITABLE_ROOTS,
                    uid=state.uid,
                    gid=state.gid,
                    max_file_bytes=self._max_file_bytes,
                    max_list_entries=self._max_list_entries,
                )
            )
        finally:
            os.close(root_fd)


def _check_limits(limits: ResourceLimits) -> None:
    if limits.vcpus <= 0 or limits.memory_mib <= 0 or limits.disk_mib <= 0 or limits.pids <= 0:
        raise InvalidRequest("resource limits must be positive")


async def _wait_exited(pid: int, timeout_s: float) -> None:
    """Wait until our (unreaped) child ``pid`` has exited, without reaping it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            # WNOHANG: answers at once whether or not the child has exited.
            options = os.WEXITED | os.WNOHANG | os.WNOWAIT
            if os.waitid(os.P_PID, pid, options) is not None:  # noqa: ASYNC222
                return
        except ChildProcessError:
            return
        await asyncio.sleep(0.005)


def _kill_verified(ref: ProcessRef) -> None:
    """SIGKILL ``ref`` through a pidfd, so a recycled pid is never hit."""
    try:
        pidfd = os.pidfd_open(ref.pid)
    except OSError:
        return
    try:
        if start_time(ref.pid) == ref.start_time:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)
