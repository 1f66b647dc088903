"""Limits, freezing and whole-tree killing with cgroups (v2, or v1 controllers).

Sandboxes are created only beneath the service's own cgroup (read from
``/proc/self/cgroup``), never at a hierarchy root, in a directory per driver:
``<own cgroup>/runtools-sandboxes/<driver key>/<sandbox id>``.

Layout of one sandbox, ``<id>``:

* v2: limits on ``<id>``; processes live in leaves ``<id>/init`` and
  ``<id>/exec-N`` (``<id>`` enables no controllers for its children, so the
  "no internal processes" rule does not apply and ``<id>`` limits the sum).
* v1: limits on ``memory/<id>``, ``pids/<id>`` and ``cpu/<id>``, which
  hold the processes directly; the freezer hierarchy carries the leaves
  (``freezer/<id>/init``, ``freezer/<id>/exec-N``) and is used to pause
  the sandbox and to find every process of one command.

A leaf per command is what makes a timeout kill complete: a process cannot
leave its cgroup, so ``setsid``/double-forked descendants are still found.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from runtools.server.domain.errors import SandboxError, SandboxUnavailable
from runtools.server.sandbox.driver import ResourceLimits

__all__ = ["CgroupHost", "SandboxCgroup", "own_memory_limit"]

GROUP_DIR = "runtools-sandboxes"
V1_LIMIT_CONTROLLERS = ("memory", "pids", "cpu")
V2_CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000
POLL_S = 0.01
FREEZE_TIMEOUT_S = 2.0
EMPTY_TIMEOUT_S = 5.0
RMDIR_TIMEOUT_S = 2.0

CgroupVersion = Literal[1, 2]


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _subtree(top: Path) -> Iterator[Path]:
    """``top`` and every cgroup below it, deepest first (the order rmdir needs)."""
    try:
        children = [p for p in top.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return
    for child in children:
        yield from _subtree(child)
    yield top


@dataclass(frozen=True)
class SandboxCgroup:
    """The cgroup directories of one sandbox; serialisable so a restart can clean up."""

    version: CgroupVersion
    track_dir: Path
    """Freezer (v1) or unified (v2) directory: pause, leaves, process lists."""
    extra_dirs: tuple[Path, ...]
    """v1 limit directories that processes must join as well; empty on v2."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "track_dir": str(self.track_dir),
            "extra_dirs": [str(d) for d in self.extra_dirs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxCgroup:
        version: CgroupVersion = 2 if data["version"] == 2 else 1
        return cls(
            version=version,
            track_dir=Path(data["track_dir"]),
            extra_dirs=tuple(Path(d) for d in data["extra_dirs"]),
        )

    def exists(self) -> bool:
        return self.track_dir.is_dir() or any(d.is_dir() for d in self.extra_dirs)

    # -- placement ---------------------------------------------------------

    def make_leaf(self, leaf: str) -> list[Path]:
        """Create a leaf and return the ``cgroup.procs`` files a process must join."""
        try:
            (self.track_dir / leaf).mkdir()
        except OSError as exc:
            raise SandboxError(f"cannot create cgroup {self.track_dir / leaf}: {exc}") from exc
        return [d / "cgroup.procs" for d in self.extra_dirs] + [
            self.track_dir / leaf / "cgroup.procs"
        ]

    def sweep_leaves(self, prefix: str) -> None:
        """Remove empty leaves; those still holding background processes stay."""
        with contextlib.suppress(FileNotFoundError):
            for leaf in self.track_dir.iterdir():
                if leaf.is_dir() and leaf.name.startswith(prefix):
                    with contextlib.suppress(OSError):
                        leaf.rmdir()

    def pids(self, leaf: str | None = None) -> set[int]:
        """Host pids of every process in the sandbox (or in one leaf)."""
        top = self.track_dir / leaf if leaf else self.track_dir
        found: set[int] = set()
        for group in _subtree(top):
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in _read(group / "cgroup.procs").split())
        if leaf is None:
            for extra in self.extra_dirs:
                with contextlib.suppress(FileNotFoundError):
                    found.update(int(p) for p in _read(extra / "cgroup.procs").split())
        return found

    def memory_procs(self) -> Path | None:
        """v1: the memory cgroup's ``cgroup.procs`` alone.

        A process placed only there is charged for the memory it allocates
        but is neither frozen with the sandbox, nor throttled by its CPU
        quota, nor counted against its pids. v2 has one hierarchy: None
        (a leaf under the sandbox is the only way to be charged).
        """
        return self.extra_dirs[0] / "cgroup.procs" if self.version == 1 else None

    def memory_headroom(self) -> int:
        """Bytes the sandbox may still be charged before it runs out of memory.

        The limit less what is charged, plus the file cache the kernel would
        reclaim first (files in tmpfs are not in it: they cannot be reclaimed).
        """
        if self.version == 1:
            group = self.extra_dirs[0]
            limit = int(_read(group / "memory.limit_in_bytes"))
            used = int(_read(group / "memory.usage_in_bytes"))
            prefix = "total_"
        else:
            group = self.track_dir
            raw = _read(group / "memory.max").strip()
            limit = int(raw) if raw != "max" else 1 << 62
            used = int(_read(group / "memory.current"))
            prefix = ""
        stats = dict(line.split() for line in _read(group / "memory.stat").splitlines())
        cache = sum(int(stats.get(f"{prefix}{n}", 0)) for n in ("active_file", "inactive_file"))
        return limit - used + cache

    # -- freezing ----------------------------------------------------------

    def is_frozen(self) -> bool:
        try:
            if self.version == 1:
                return _read(self.track_dir / "freezer.state").strip() != "THAWED"
            return _read(self.track_dir / "cgroup.freeze").strip() == "1"
        except FileNotFoundError:
            return False

    async def freeze(self, leaf: str | None = None) -> bool:
        return await self._set_frozen(self.track_dir / leaf if leaf else self.track_dir, True)

    async def thaw(self, leaf: str | None = None) -> bool:
        return await self._set_frozen(self.track_dir / leaf if leaf else self.track_dir, False)

    async def _set_frozen(self, group: Path, frozen: bool) -> bool:
        """Request the state and wait (bounded) until the kernel reports it."""
        if self.version == 1:
            control, value = group / "freezer.state", "FROZEN" if frozen else "THAWED"
        else:
            control, value = group / "cgroup.freeze", "1" if frozen else "0"
        try:
            _write(control, value)
        except OSError as exc:
            raise SandboxError(f"cannot change freezer state of {group}: {exc}") from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FREEZE_TIMEOUT_S
        while loop.time() < deadline:
            if self._reports_frozen(group) == frozen:
                return True
            await asyncio.sleep(POLL_S)
        return False

    def _reports_frozen(self, group: Path) -> bool:
        try:
            if self.version == 1:
                return _read(group / "freezer.state").strip() == "FROZEN"
            return "frozen 1" in _read(group / "cgroup.events").splitlines()
        except FileNotFoundError:
            return False

    # -- killing and removal -----------------------------------------------

    async def kill(
        self,
        leaf: str | None = None,
        timeout_s: float = EMPTY_TIMEOUT_S,
        spare: int | None = None,
    ) -> bool:
        """SIGKILL every process of the sandbox (or leaf); True once none is left.

        Processes are frozen first so none can fork between listing and
        killing. While an ancestor is frozen (a paused sandbox) killed
        processes only disappear after it is thawed; then this returns False.
        ``spare`` is left alive (and may remain).
        """
        group = self.track_dir / leaf if leaf else self.track_dir
        if not group.is_dir() and (leaf or not self.extra_dirs):
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if spare is None and self.version == 2 and (group / "cgroup.kill").exists():
                with contextlib.suppress(FileNotFoundError):
                    _write(group / "cgroup.kill", "1")
            else:
                frozen = group.is_dir() and await self._set_frozen(group, True)
                for pid in self.pids(leaf) - {spare}:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                if frozen:
                    await self._set_frozen(group, False)
            if not self.pids(leaf) - {spare}:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_S)

    def remove_leaf(self, leaf: str) -> bool:
        try:
            (self.track_dir / leaf).rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    async def remove(self) -> None:
        """Remove every directory of the sandbox; the processes must be gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RMDIR_TIMEOUT_S
        for top in (self.track_dir, *self.extra_dirs):
            for group in list(_subtree(top)):
                while True:
                    try:
                        group.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError as exc:
                        # Exiting tasks can keep a cgroup busy for a moment.
                        if exc.errno != errno.EBUSY or loop.time() >= deadline:
                            raise SandboxError(f"cannot remove cgroup {group}: {exc}") from exc
                        await asyncio.sleep(POLL_S)


@dataclass(frozen=True)
class _Mount:
    mountpoint: Path
    root: str
    options: frozenset[str]
    fstype: str


def _mounts() -> list[_Mount]:
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        unescape = fields[4].encode().decode("unicode_escape")
        found.append(
            _Mount(
                mountpoint=Path(unescape),
                root=fields[3],
                options=frozenset(tail[2].split(",")),
                fstype=tail[0],
            )
        )
    return found


def _own_paths() -> dict[str, str]:
    """Controller name (``""`` for v2) to this process's cgroup path."""
    paths: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _under(mount: _Mount, path: str) -> Path:
    """The directory of cgroup ``path`` in a hierarchy mounted at ``mount``."""
    root = mount.root.rstrip("/")
    if root and not (path == root or path.startswith(root + "/")):
        raise SandboxUnavailable(
            f"own cgroup {path} is not visible under the cgroup mount {mount.mountpoint}"
        )
    return mount.mountpoint / path[len(root) :].lstrip("/")


def own_memory_limit() -> int | None:
    """Bytes this process's cgroup (or an ancestor) may use; None when not limited.

    Sandboxes' cgroups nest under the service's own, so in a memory-limited
    container that limit, not the host's RAM, is what they share.
    """
    try:
        paths = _own_paths()
        mounts = _mounts()
    except (OSError, ValueError):
        return None
    limits: list[int] = []
    for mount in mounts:
        if mount.fstype == "cgroup" and "memory" in mount.options and "memory" in paths:
            own, name = paths["memory"], "memory.limit_in_bytes"
        elif mount.fstype == "cgroup2" and "" in paths:
            own, name = paths[""], "memory.max"
        else:
            continue
        try:
            directory = _under(mount, own)
        except SandboxUnavailable:
            continue
        while True:
            with contextlib.suppress(OSError, ValueError):
                raw = _read(directory / name).strip()
                if raw != "max" and int(raw) < 1 << 60:  # v1 spells "unlimited" as ~2**63
                    limits.append(int(raw))
            if directory == mount.mountpoint or directory.parent == directory:
                break
            directory = directory.parent
    return min(limits, default=None)


class CgroupHost:
    """The service's view of the cgroup hierarchies it may create sandboxes in."""

    def __init__(self, version: CgroupVersion, bases: dict[str, Path]) -> None:
        self.version = version
        # v2: {"": <own>/runtools-sandboxes/<key>}; v1: one entry per controller.
        self.bases = bases

    @classmethod
    def detect(cls, driver_key: str, unified_root: Path = Path("/sys/fs/cgroup")) -> CgroupHost:
        """Find where to create sandboxes; ``SandboxUnavailable`` names what is missing."""
        try:
            own = _own_paths()
            if (unified_root / "cgroup.controllers").exists():
                mount = _Mount(unified_root, "/", frozenset(), "cgroup2")
                base = _under(mount, own.get("", "/")) / GROUP_DIR / driver_key
                return cls(2, {"": base})
            bases: dict[str, Path] = {}
            mounts = [m for m in _mounts() if m.fstype == "cgroup"]
            for controller in (*V1_LIMIT_CONTROLLERS, "freezer"):
                found = next((m for m in mounts if controller in m.options), None)
                if found is None or controller not in own:
                    raise SandboxUnavailable(f"cgroup controller {controller!r} is not mounted")
                bases[controller] = _under(found, own[controller]) / GROUP_DIR / driver_key
            return cls(1, bases)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot inspect cgroups: {exc}") from exc

    def prepare(self) -> None:
        """Create the per-driver directories (and, on v2, delegate the controllers)."""
        for base in self.bases.values():
            try:
                if self.version == 2:
                    self._delegate_v2(base)
                base.mkdir(parents=True, exist_ok=True)
                # A name of its own per call: concurrent creates probe at once.
                probe = base / f"probe-{os.getpid()}-{secrets.token_hex(6)}"
                probe.mkdir()
                probe.rmdir()
            except SandboxUnavailable:
                raise
            except OSError as exc:
                raise SandboxUnavailable(f"cannot create cgroups under {base}: {exc}") from exc

    def _delegate_v2(self, base: Path) -> None:
        # Controllers must be enabled in every ancestor's subtree_control,
        # starting at the service's own cgroup. The kernel refuses that while
        # the own cgroup holds processes (unless it is the root), so a v2
        # service must run in a delegated cgroup with its processes in a leaf.
        own = base.parent.parent
        wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS)
        available = set(_read(own / "cgroup.controllers").split())
        missing = [c for c in V2_CONTROLLERS if c not in available]
        if missing:
            raise SandboxUnavailable(
                f"cgroup controllers {', '.join(missing)} are not available in {own}"
            )
        for group in (own, base.parent):
            group.mkdir(exist_ok=True)
            enabled = set(_read(group / "cgroup.subtree_control").split())
            if not set(V2_CONTROLLERS) <= enabled:
                try:
                    _write(group / "cgroup.subtree_control", wanted)
                except OSError as exc:
                    raise SandboxUnavailable(
                        f"cannot enable cgroup controllers in {group} "
                        f"(the service must run in a delegated cgroup): {exc}"
                    ) from exc
        base.mkdir(exist_ok=True)
        if not set(V2_CONTROLLERS) <= set(_read(base / "cgroup.subtree_control").split()):
            _write(base / "cgroup.subtree_control", wanted)

    def remove_if_empty(self) -> None:
        """Remove this driver's directories (and the shared parent) once unused."""
        for base in self.bases.values():
            for group in (base, base.parent):
                try:
                    group.rmdir()
                except OSError:
                    break  # still in use (by sandboxes or by other drivers)

    def layout(self, sandbox_id: str) -> SandboxCgroup:
        if self.version == 2:
            return SandboxCgroup(2, self.bases[""] / sandbox_id, ())
        return SandboxCgroup(
            1,
            self.bases["freezer"] / sandbox_id,
            tuple(self.bases[c] / sandbox_id for c in V1_LIMIT_CONTROLLERS),
        )

    def existing_ids(self) -> set[str]:
        ids: set[str] = set()
        for base in self.bases.values():
            with contextlib.suppress(FileNotFoundError):
                ids.update(p.name for p in base.iterdir() if p.is_dir())
        return ids

    def create(self, sandbox_id: str, limits: ResourceLimits) -> SandboxCgroup:
        """Create the sandbox's cgroups with its limits applied."""
        cgroup = self.layout(sandbox_id)
        try:
            for group in (cgroup.track_dir, *cgroup.extra_dirs):
                group.mkdir()
            self._apply_limits(cgroup, limits)
        except OSError as exc:
            raise SandboxError(f"cannot create cgroups for sandbox {sandbox_id}: {exc}") from exc
        return cgroup

    def _apply_limits(self, cgroup: SandboxCgroup, limits: ResourceLimits) -> None:
        memory = str(limits.memory_mib * 1024 * 1024)
        quota = str(max(MIN_CFS_QUOTA_US, int(limits.vcpus * CFS_PERIOD_US)))
        if cgroup.version == 2:
            group = cgroup.track_dir
            _write(group / "memory.max", memory)
            # No swap: the memory limit must be a real ceiling.
            if (group / "memory.swap.max").exists():
                _write(group / "memory.swap.max", "0")
            _write(group / "pids.max", str(limits.pids))
            _write(group / "cpu.max", f"{quota} {CFS_PERIOD_US}")
            return
        memory_dir, pids_dir, cpu_dir = cgroup.extra_dirs
        _write(memory_dir / "memory.limit_in_bytes", memory)
        if (memory_dir / "memory.memsw.limit_in_bytes").exists():
            _write(memory_dir / "memory.memsw.limit_in_bytes", memory)
        _write(pids_dir / "pids.max", str(limits.pids))
        _write(cpu_dir / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        _write(cpu_dir / "cpu.cfs_quota_us", quota)
