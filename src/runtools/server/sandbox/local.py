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
import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from enum import Enum
from pathlib import Path
from typing import TypeVar

from runtools.server.domain.errors import (
    InvalidRequest,
    SandboxError,
    SandboxNotFound,
    SandboxProcessLimit,
    SandboxStateConflict,
    SandboxUnavailable,
)
from runtools.server.sandbox.archive import SandboxDoor, pack, unpack
from runtools.server.sandbox.cgroups import CgroupHost, SandboxCgroup, detect_host
from runtools.server.sandbox.charged_write import write_charged
from runtools.server.sandbox.driver import (
    DEFAULT_CWD,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_TIMEOUT_MS,
    ArchiveWritten,
    ExecChunk,
    ExecEvent,
    ExecExit,
    ExecResult,
    FileEntry,
    ResourceLimits,
    SandboxSpec,
    StreamName,
    TerminalSize,
)
from runtools.server.sandbox.enter import (
    HOST_ENV,
    JOIN_FAILED,
    check_env,
    exec_argv,
    join_cgroups_argv,
    open_namespaces,
)
from runtools.server.sandbox.filesystem import ConfinedFiles, normalize
from runtools.server.sandbox.holders import Holders
from runtools.server.sandbox.identity import ProcessRef, open_process, start_time
from runtools.server.sandbox.identity import is_alive as process_is_alive
from runtools.server.sandbox.layout import (
    DISK_DIRS,
    DISK_IMAGE,
    HOME,
    WORKSPACE,
    WRITABLE_ROOTS,
    base_env,
    bwrap_argv,
    etc_files,
    in_memory,
    init_argv,
    layer_directory,
    mkfs_argv,
    sandbox_mounts_argv,
)
from runtools.server.sandbox.oom import COMMAND_SCORE, scored
from runtools.server.sandbox.output import Leftovers
from runtools.server.sandbox.process import Exited, Output, follow, spawn
from runtools.server.sandbox.residue import KEYCTL, clear_keyrings, wait_clean
from runtools.server.sandbox.seccomp import SeccompFilter, build_filter
from runtools.server.sandbox.session import SessionProcess, sandbox_pty, start_session
from runtools.server.sandbox.state import SANDBOX_ID, SandboxState, StateStore
from runtools.server.sandbox.templates import Template, TemplateStore

__all__ = ["LocalSandboxDriver"]

T = TypeVar("T")

INIT_LEAF = "init"
EXEC_LEAF_PREFIX = "exec-"
# Interactive sessions (SSH): killed when the sandbox is paused, unlike commands' leaves.
SESSION_LEAF_PREFIX = "ssh-"
# What a session without a command runs: the sandbox's bash if it has one, else sh.
LOGIN_SHELL = "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l"
# Host programs the driver runs as root; the sandbox side uses its own
# userland (setpriv, env, sleep, sh): the host's for the host's template, an
# imported template's own otherwise (checked when it is imported).
HOST_TOOLS = {
    "bwrap": "bubblewrap (bwrap)",
    "nsenter": "util-linux nsenter",
    "keyctl": "keyutils keyctl",
    "unshare": "util-linux unshare",
    "mount": "util-linux mount",
    "mkfs.ext4": "e2fsprogs mkfs.ext4",
}
SANDBOX_TOOLS = {
    "/bin/sh": "a POSIX shell (/bin/sh)",
    "/usr/bin/setpriv": "util-linux setpriv",
    "/usr/bin/env": "coreutils env",
    init_argv()[0]: "coreutils sleep",
}
PROBE_TIMEOUT_S = 10.0
# A sandbox's disk is an image file loop-mounted in its mount namespace.
LOOP_CONTROL = "/dev/loop-control"
# Under the driver's root: the empty disk of each size, which new disks copy.
BLANK_DISKS = "blank-disks"
EXEC_KILL_TIMEOUT_S = 1.0
# Processes a command needs to get in: the host-side process (it joins the
# sandbox's cgroups, then becomes nsenter) and the one nsenter forks.
ENTER_PROCESSES = 2


class _Entry(Enum):
    """What a command's first stderr bytes say about its way in."""

    JOIN_FAILED = JOIN_FAILED.encode()
    FORK_FAILED = b"nsenter: fork failed"  # the pids controller refused nsenter's fork
    UNDECIDED = b""
    ENTERED = None


# How long a destroy waits for the kernel to collect the keys it invalidated.
KEYS_GONE_TIMEOUT_S = 2.0


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
        templates: TemplateStore | None = None,
    ) -> None:
        self._root = Path(os.path.abspath(root))
        self._store = StateStore(self._root)
        self._holders = Holders(self._root)
        self.templates = templates or TemplateStore(self._root / "templates")
        self._uid_base = uid_base
        self._max_sandboxes = max_sandboxes
        self._max_file_bytes = max_file_bytes
        self._max_list_entries = max_list_entries
        self._startup_timeout_s = startup_timeout_s
        self._tools: dict[str, str] = {}
        self._cgroups: CgroupHost | None = None
        self._seccomp: SeccompFilter | None = None
        self._bwraps: dict[str, subprocess.Popen[bytes]] = {}
        # Uploads being written, per sandbox: such a sandbox is not paused.
        self._uploads: Counter[str] = Counter()
        self._locks: dict[str, asyncio.Lock] = {}
        self._leftovers = Leftovers()
        # Host pids of the nsenter of each command in flight, per sandbox.
        self._entering: dict[str, set[int]] = {}

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
        if not os.path.exists(LOOP_CONTROL):  # noqa: ASYNC240 - a device node, no disk
            raise SandboxUnavailable(f"loop devices are not available ({LOOP_CONTROL} is missing)")
        for path, what in SANDBOX_TOOLS.items():
            if not os.access(path, os.X_OK):
                raise SandboxUnavailable(f"{what} is not installed ({path} is missing)")
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError) as exc:
            raise SandboxUnavailable("the kernel does not support pidfds (Linux 5.3+)") from exc
        seccomp = self._seccomp or build_filter()
        cgroups = detect_host(_driver_key(self._root))
        await asyncio.to_thread(cgroups.prepare)
        await self._probe_namespaces(tools["bwrap"], seccomp)
        try:
            self._store.prepare()
        except OSError as exc:
            raise SandboxUnavailable(f"cannot create state directory {self._root}: {exc}") from exc
        self._tools = tools
        self._seccomp = seccomp
        self._cgroups = cgroups

    async def _probe_namespaces(self, bwrap: str, seccomp: SeccompFilter) -> None:
        """Start a throw-away sandbox: kernels or containers may forbid namespaces."""
        seccomp_fd = seccomp.memfd()
        argv = bwrap_argv(
            bwrap,
            SandboxSpec(),
            etc_fds={},
            info_fd=None,
            seccomp_fd=seccomp_fd,
            command=["/bin/true"],
        )
        try:
            result = await asyncio.to_thread(
                subprocess.run,
                argv,
                env=HOST_ENV,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PROBE_TIMEOUT_S,
                check=False,
                pass_fds=(seccomp_fd,),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap cannot be run: {exc}") from exc
        finally:
            os.close(seccomp_fd)
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip()
            raise SandboxUnavailable(f"bubblewrap cannot create namespaces: {message}")

    def _host(self) -> CgroupHost:
        if self._cgroups is None:
            raise SandboxUnavailable("check_available() has not succeeded")
        return self._cgroups

    def _filter(self) -> SeccompFilter:
        if self._seccomp is None:
            raise SandboxUnavailable("check_available() has not succeeded")
        return self._seccomp

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
        template = self.templates.resolve(spec.template)
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
                state.init = await self._start(state, spec, template)
                self._store.save(state)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._teardown(sandbox_id, state))
                raise

    async def _start(
        self, state: SandboxState, spec: SandboxSpec, template: Template
    ) -> ProcessRef:
        """Start bubblewrap in the sandbox's cgroups; return its PID 1 once ready."""
        etc_fds: dict[str, int] = {}
        state_dir = self._store.dir(state.sandbox_id)
        image = await self._make_disk(state_dir / DISK_IMAGE, spec.resources.disk_mib)
        fallback = state_dir / "layer"
        layer = layer_directory(str(fallback))
        if layer == str(fallback):
            fallback.mkdir(mode=0o700, exist_ok=True)
        prefix = sandbox_mounts_argv(
            unshare=self._tools["unshare"],
            mount=self._tools["mount"],
            image=str(image),
            template=template,
            layer=layer,
        )
        info_r, info_w = os.pipe2(os.O_CLOEXEC)
        seccomp_fd = self._filter().memfd()
        log_path = self._store.dir(state.sandbox_id) / "bwrap.log"
        try:
            for path, content in etc_files(state.uid, state.gid).items():
                fd = os.memfd_create("etc", 0)
                os.write(fd, content)
                os.lseek(fd, 0, os.SEEK_SET)
                etc_fds[path] = fd
            argv = bwrap_argv(
                self._tools["bwrap"],
                spec,
                etc_fds=etc_fds,
                info_fd=info_w,
                seccomp_fd=seccomp_fd,
                layer=layer,
                own_root=template.root is not None,
            )
            procs = state.cgroup.make_leaf(INIT_LEAF)
            # Creating an empty local file and forking take a moment, not a wait.
            with open(log_path, "wb") as log:  # noqa: ASYNC230 - see above
                # start_new_session: bwrap's --new-session covers the command,
                # this covers bwrap itself, which outlives this process: no
                # signal of the service's terminal or process group reaches it.
                proc = subprocess.Popen(  # noqa: S603, ASYNC220 - fixed argv, no shell; see above
                    join_cgroups_argv(procs, [*prefix, *argv]),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=HOST_ENV,
                    pass_fds=(*etc_fds.values(), info_w, seccomp_fd),
                    close_fds=True,
                    start_new_session=True,
                )
        except OSError as exc:
            os.close(info_r)
            raise SandboxError(f"cannot start sandbox {state.sandbox_id}: {exc}") from exc
        finally:
            os.close(info_w)
            os.close(seccomp_fd)
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

    async def _make_disk(self, image: Path, disk_mib: int) -> Path:
        """The sandbox's disk: a sparse copy of the blank disk of ``disk_mib``."""
        blank = await self._blank_disk(disk_mib)
        try:
            await asyncio.to_thread(_copy_sparse, blank, image)
        except OSError as exc:
            raise SandboxError(f"cannot make the sandbox's disk: {exc}") from exc
        return image

    async def _blank_disk(self, disk_mib: int) -> Path:
        """An empty ext4 image of ``disk_mib``, made once per size (``mkfs.ext4``).

        New disks are copied from it, holes and all: a copy of its few
        hundred KiB costs less than running ``mkfs.ext4`` for every sandbox.
        """
        blanks = self._root / BLANK_DISKS
        blank = blanks / f"{disk_mib}.img"
        if blank.exists():
            return blank
        work = blanks / f".new-{secrets.token_hex(6)}"
        contents = work / "contents"
        image = work / "disk.img"
        try:
            contents.mkdir(mode=0o700, parents=True)
            for name, mode in DISK_DIRS.items():
                (contents / name).mkdir(mode=mode)
                os.chmod(contents / name, mode)  # past the umask
            with open(image, "xb") as f:  # noqa: ASYNC230 - creates an empty local file
                os.ftruncate(f.fileno(), disk_mib * 1024 * 1024)
            proc = await asyncio.create_subprocess_exec(
                *mkfs_argv(self._tools["mkfs.ext4"], str(image), str(contents)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=HOST_ENV,
            )
            try:
                _, err = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
            except BaseException as exc:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                if isinstance(exc, TimeoutError):
                    raise SandboxError("making the sandbox's disk timed out") from exc
                raise
            if proc.returncode != 0:
                message = err.decode(errors="replace").strip()
                raise SandboxError(f"cannot make the sandbox's disk: {message}")
            os.rename(image, blank)  # atomic: a racing create made the same
        except OSError as exc:
            raise SandboxError(f"cannot make the sandbox's disk: {exc}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return blank

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
            # Interactive sessions end with the pause: nobody types into a frozen shell.
            await self._end_sessions(state)
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
            # Keyrings outlive the processes; what cannot be cleared keeps the
            # uid out of use (allocate_uid checks), so release it regardless.
            await asyncio.to_thread(self._clear_keyrings, state.uid, state.gid)
            self._store.release_uid(state.uid, sandbox_id)

    def _clear_keyrings(self, uid: int, gid: int) -> None:
        clear_keyrings(uid, gid, self._tools.get("keyctl", KEYCTL))
        wait_clean(uid, KEYS_GONE_TIMEOUT_S)

    def _reap_exited_bwraps(self) -> None:
        # bubblewrap is our child; once its sandbox is gone it must be waited
        # for even if another driver instance did the teardown.
        for sandbox_id, proc in list(self._bwraps.items()):
            if proc.poll() is not None:
                del self._bwraps[sandbox_id]

    async def is_alive(self, sandbox_id: str) -> bool:
        """Its PID 1 lives: the same pid, started at the same time, in its own cgroup.

        All three, since a sandbox may have outlived the service that started
        it: a pid alone may be reused by anything once the sandbox has died.
        """
        self._reap_exited_bwraps()
        state = self._store.load(sandbox_id)
        return (
            state is not None
            and state.init is not None
            and process_is_alive(state.init)
            and state.init.pid in state.cgroup.pids(INIT_LEAF)
        )

    def joining(self) -> AbstractAsyncContextManager[bool]:
        return self._holders.joining()

    def leave(self) -> bool:
        return self._holders.leave()

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
        current, limit = state.cgroup.process_count()
        if limit is not None and current + ENTER_PROCESSES > limit:
            raise _at_limit(sandbox_id, limit)
        return state

    def _limit_of(self, state: SandboxState) -> int:
        _, limit = state.cgroup.process_count()
        return limit or 0

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
                child = spawn(
                    join_cgroups_argv(procs, scored(COMMAND_SCORE, argv)),
                    env=HOST_ENV,
                    preexec=self._filter().install,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                cgroup.remove_leaf(leaf)
                raise SandboxError(f"cannot run command: {exc}") from exc
        except BaseException:
            fds.close()
            raise
        entering = self._entering.setdefault(state.sandbox_id, set())
        entering.add(child.proc.pid)

        async def kill() -> None:
            # Everything but nsenter first: nsenter then reaps its child (the
            # command's top process) and exits by itself. Killed together,
            # that child would be orphaned to the host's init - the reaper is
            # chosen by the parent's PID namespace - and until reaped there it
            # holds the sandbox's PID namespace and cgroup busy.
            await cgroup.kill(leaf, timeout_s=EXEC_KILL_TIMEOUT_S, spare=child.proc.pid)
            await _wait_exited(child.proc.pid, EXEC_KILL_TIMEOUT_S)
            await cgroup.kill(leaf, timeout_s=EXEC_KILL_TIMEOUT_S)

        # The first words on stderr may be the entry chain's own failure rather
        # than the command's: held back until they tell (nsenter writes its
        # name and its message separately).
        head = bytearray()
        undecided = True
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
                    if undecided and isinstance(event, Output) and event.stream == "stderr":
                        head += event.data
                        entry = _entry_of(bytes(head))
                        if entry is _Entry.JOIN_FAILED:
                            raise SandboxError(head.decode(errors="replace").strip())
                        if entry is _Entry.FORK_FAILED:
                            # Filled up since _prepare_exec looked: the same refusal.
                            raise _at_limit(state.sandbox_id, self._limit_of(state))
                        if entry is _Entry.UNDECIDED:
                            continue
                        undecided = False
                        event = Output(stream="stderr", data=bytes(head))
                    elif undecided and isinstance(event, Exited) and head:
                        yield Output(stream="stderr", data=bytes(head))
                    yield event
                    if isinstance(event, Exited):
                        return
        finally:
            entering.discard(child.proc.pid)
            # nsenter opens them by path; they must outlive its start.
            fds.close()
            # Stays if background processes still live in it; swept later.
            cgroup.remove_leaf(leaf)

    async def kill_processes(self, sandbox_id: str) -> None:
        await self.check_available()
        async with self._lock(sandbox_id):
            state = self._running(sandbox_id)
            cgroup = state.cgroup
            if cgroup.is_frozen():
                raise SandboxStateConflict(f"sandbox {sandbox_id} is paused")
            # Everything of commands, running or left in the background; not
            # the sandbox's PID 1 and init (their own leaf), and not the
            # nsenter of a command in flight: it reaps its child and exits by
            # itself, so the command ends as killed (137) and nothing is
            # orphaned to the host's init.
            spared = self._entering.get(sandbox_id, set())
            for prefix in (EXEC_LEAF_PREFIX, SESSION_LEAF_PREFIX):
                for leaf in cgroup.leaves(prefix):
                    if not await cgroup.kill(leaf, spare=spared & cgroup.pids(leaf)):
                        raise SandboxError(f"processes of sandbox {sandbox_id} could not be killed")
                cgroup.sweep_leaves(prefix)

    async def _end_sessions(self, state: SandboxState) -> None:
        spared = self._entering.get(state.sandbox_id, set())
        for leaf in state.cgroup.leaves(SESSION_LEAF_PREFIX):
            await state.cgroup.kill(leaf, timeout_s=EXEC_KILL_TIMEOUT_S, spare=spared)
            await state.cgroup.kill(leaf, timeout_s=EXEC_KILL_TIMEOUT_S)
        state.cgroup.sweep_leaves(SESSION_LEAF_PREFIX)

    # -- interactive sessions ----------------------------------------------

    async def open_session(
        self,
        sandbox_id: str,
        command: str | None,
        *,
        env: Mapping[str, str] | None = None,
        terminal: TerminalSize | None = None,
    ) -> SessionProcess:
        await self.check_available()
        state = self._prepare_exec(sandbox_id, env, DEFAULT_TIMEOUT_MS, 0)
        cgroup = state.cgroup
        leaf = f"{SESSION_LEAF_PREFIX}{secrets.token_hex(6)}"
        proc_fd = self._open_init(state)
        try:
            fds = open_namespaces(proc_fd)
        except OSError as exc:
            raise SandboxStateConflict(f"sandbox {state.sandbox_id} is not running") from exc
        finally:
            os.close(proc_fd)
        extra = {"TERM": terminal.term} if terminal is not None and terminal.term else {}
        try:
            argv = exec_argv(
                nsenter=self._tools["nsenter"],
                fds=fds,
                uid=state.uid,
                gid=state.gid,
                cwd=DEFAULT_CWD,
                env={**base_env(), **state.env, **extra, **(env or {})},
                command=command if command is not None else LOGIN_SHELL,
            )
            cgroup.sweep_leaves(SESSION_LEAF_PREFIX)
            procs = cgroup.make_leaf(leaf)
        except BaseException:
            fds.close()
            raise
        entering = self._entering.setdefault(state.sandbox_id, set())
        pid: list[int] = []

        async def kill() -> None:
            # As for a command: everything but the entry process, which then
            # reaps its child and exits; then whatever is left.
            await cgroup.kill(leaf, timeout_s=EXEC_KILL_TIMEOUT_S, spare=set(pid))
            if pid:
                await _wait_exited(pid[0], EXEC_KILL_TIMEOUT_S)
            await cgroup.kill(leaf, timeout_s=EXEC_KILL_TIMEOUT_S)

        async def ended() -> None:
            if pid:
                entering.discard(pid[0])
            # nsenter opens them by path: they outlive its start, as for a command.
            fds.close()
            cgroup.remove_leaf(leaf)  # stays if background processes live on; swept later

        try:
            session = start_session(
                join_cgroups_argv(procs, scored(COMMAND_SCORE, argv)),
                env=HOST_ENV,
                terminal=terminal,
                preexec=self._filter().install,
                on_end=ended,
                kill=kill,
                open_pty=lambda: sandbox_pty(fds.root),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            fds.close()
            cgroup.remove_leaf(leaf)
            raise SandboxError(f"cannot start a session: {exc}") from exc
        pid.append(session.pid)
        entering.add(session.pid)
        return session

    # -- files -------------------------------------------------------------

    async def write_file(
        self,
        sandbox_id: str,
        path: str,
        data: bytes | AsyncIterator[bytes],
        *,
        size: int | None = None,
    ) -> str:
        # Resolved and opened in a thread (path-safe, quick), filled by a process the
        # sandbox is charged for (awaited: a slow upload holds no thread), renamed.
        state = self._state(sandbox_id)
        if isinstance(data, bytes):
            size, chunks = len(data), _once(data)
        else:
            chunks = data
        pending = await self._files(sandbox_id, lambda files: files.prepare_write(path, size or 0))
        self._uploads[sandbox_id] += 1
        try:
            with pending.filling() as fd:
                await write_charged(
                    state.cgroup,
                    fd,
                    chunks,
                    pending.path,
                    size=size,
                    max_bytes=self._max_file_bytes,
                    in_memory=in_memory(pending.path),
                )
        finally:
            self._uploads[sandbox_id] -= 1
            if not self._uploads[sandbox_id]:
                del self._uploads[sandbox_id]
        await asyncio.to_thread(pending.commit)
        return pending.path

    async def read_file(self, sandbox_id: str, path: str) -> bytes:
        return await self._files(sandbox_id, lambda files: files.read(path))

    async def list_files(self, sandbox_id: str, path: str) -> list[FileEntry]:
        return await self._files(sandbox_id, lambda files: files.listdir(path))

    async def write_archive(
        self, sandbox_id: str, path: str, chunks: AsyncIterator[bytes]
    ) -> ArchiveWritten:
        target = normalize(path, WRITABLE_ROOTS)
        await self.check_available()
        async with self._transfer(sandbox_id), self._door(sandbox_id) as door:
            return await unpack(door, target, chunks)

    async def read_archive(self, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        await self.check_available()
        directory = await self._files(sandbox_id, lambda files: files.directory(path))
        return self._packed(sandbox_id, directory)

    async def _packed(self, sandbox_id: str, directory: str) -> AsyncIterator[bytes]:
        async with self._transfer(sandbox_id), self._door(sandbox_id) as door:
            async for chunk in pack(door, directory):
                yield chunk

    @contextlib.asynccontextmanager
    async def _door(self, sandbox_id: str) -> AsyncIterator[SandboxDoor]:
        """The way in for an archive worker; its fds stay open until the transfer ends."""
        state = self._running(sandbox_id)
        if state.cgroup.is_frozen():
            raise SandboxStateConflict(f"sandbox {sandbox_id} is paused")
        proc_fd = self._open_init(state)
        try:
            fds = open_namespaces(proc_fd)
        except OSError as exc:
            raise SandboxStateConflict(f"sandbox {sandbox_id} is not running") from exc
        finally:
            os.close(proc_fd)
        try:
            yield SandboxDoor(
                sandbox_id,
                state.cgroup,
                fds,
                state.uid,
                state.gid,
                self._tools["nsenter"],
                self._filter().install,
            )
        finally:
            fds.close()

    @contextlib.asynccontextmanager
    async def _transfer(self, sandbox_id: str) -> AsyncIterator[None]:
        """While files move in or out, the sandbox is not paused (its writer would freeze)."""
        self._uploads[sandbox_id] += 1
        try:
            yield
        finally:
            self._uploads[sandbox_id] -= 1
            if not self._uploads[sandbox_id]:
                del self._uploads[sandbox_id]

    async def _files(self, sandbox_id: str, op: Callable[[ConfinedFiles], T]) -> T:
        state = self._state(sandbox_id)
        return await asyncio.to_thread(self._with_files, state, op)

    def _with_files(self, state: SandboxState, op: Callable[[ConfinedFiles], T]) -> T:
        # The sandbox's root as seen by its PID 1: its own mount namespace,
        # so its disk and tmpfs are reachable without any host-side mount.
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


def _entry_of(head: bytes) -> _Entry:
    failures = (_Entry.JOIN_FAILED, _Entry.FORK_FAILED)
    for failure in failures:
        if head.startswith(failure.value):
            return failure
    if any(failure.value.startswith(head) for failure in failures):
        return _Entry.UNDECIDED
    return _Entry.ENTERED


def _at_limit(sandbox_id: str, limit: int) -> SandboxProcessLimit:
    return SandboxProcessLimit(
        f"sandbox {sandbox_id} is at its limit of {limit} processes: no command can start; "
        "kill its processes (its files are kept) or destroy it",
        limit=limit,
    )


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


def _copy_sparse(source: Path, target: Path) -> None:
    """Copy ``source`` to the new file ``target``: its data, its holes left holes."""
    with open(source, "rb") as src, open(target, "xb") as dst:
        size = os.fstat(src.fileno()).st_size
        os.ftruncate(dst.fileno(), size)
        offset = 0
        while offset < size:
            try:
                data = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    return
                raise
            hole = os.lseek(src.fileno(), data, os.SEEK_HOLE)
            while data < hole:
                copied = os.copy_file_range(src.fileno(), dst.fileno(), hole - data, data, data)
                if copied == 0:
                    raise OSError(errno.EIO, f"{source} ended early")
                data += copied
            offset = hole


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


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
