"""What the driver calls on cgroups, and the parts cgroup v1 and v2 do alike.

``CgroupHost`` is where a driver's sandboxes may be created (``prepare``,
``create``, ``layout``, ``existing_ids``, ``remove_if_empty``);
``SandboxCgroup`` is one sandbox's cgroups (leaves, process lists, memory,
freezing, killing, removal). Both are implemented per version in ``v1`` and
``v2``; the algorithms that do not depend on the version (wait for the
freezer, freeze-list-kill until empty, remove deepest first) live here,
over the few hooks each version fills in.

Not here: a control file of either version, or finding the hierarchies
(``hierarchy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import signal
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from runtools.server.domain.errors import SandboxError, SandboxUnavailable
from runtools.server.sandbox.cgroups.files import read, subtree, write
from runtools.server.sandbox.cgroups.hierarchy import CgroupVersion
from runtools.server.sandbox.driver import ResourceLimits

__all__ = ["CgroupHost", "SandboxCgroup", "cpu_quota_us", "reclaimable_file_cache"]

CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000
POLL_S = 0.01
FREEZE_TIMEOUT_S = 2.0
EMPTY_TIMEOUT_S = 5.0
RMDIR_TIMEOUT_S = 2.0


def cpu_quota_us(limits: ResourceLimits) -> int:
    """CPU time per ``CFS_PERIOD_US`` for ``limits.vcpus``, never below the kernel's floor."""
    return max(MIN_CFS_QUOTA_US, int(limits.vcpus * CFS_PERIOD_US))


def reclaimable_file_cache(memory_stat: Path, prefix: str) -> int:
    """Bytes of file cache in a ``memory.stat`` the kernel would reclaim before an OOM."""
    stats = dict(line.split() for line in read(memory_stat).splitlines())
    return sum(int(stats.get(f"{prefix}{n}", 0)) for n in ("active_file", "inactive_file"))


@dataclass(frozen=True)
class SandboxCgroup(ABC):
    """The cgroup directories of one sandbox; serialisable so a restart can clean up."""

    version: ClassVar[CgroupVersion]

    track_dir: Path
    """Freezer (v1) or unified (v2) directory: pause, leaves, process lists."""
    extra_dirs: tuple[Path, ...] = ()
    """v1 limit directories that processes must join as well; empty on v2."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "track_dir": str(self.track_dir),
            "extra_dirs": [str(d) for d in self.extra_dirs],
        }

    def exists(self) -> bool:
        return self.track_dir.is_dir() or any(d.is_dir() for d in self.extra_dirs)

    # -- limits (called by the host when it creates the directories) ------

    @abstractmethod
    def apply_limits(self, limits: ResourceLimits) -> None:
        """Write ``limits`` into the sandbox's freshly made cgroups; ``OSError`` as it comes."""

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

    def leaves(self, prefix: str) -> list[str]:
        """Names of the leaves starting with ``prefix``."""
        with contextlib.suppress(FileNotFoundError):
            return sorted(
                leaf.name
                for leaf in self.track_dir.iterdir()
                if leaf.is_dir() and leaf.name.startswith(prefix)
            )
        return []

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
        for group in subtree(top):
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in read(group / "cgroup.procs").split())
        if leaf is None:
            for extra in self.extra_dirs:
                with contextlib.suppress(FileNotFoundError):
                    found.update(int(p) for p in read(extra / "cgroup.procs").split())
        return found

    @abstractmethod
    def _pids_dir(self) -> Path:
        """The directory whose ``pids.current`` and ``pids.max`` count the sandbox."""

    def process_count(self) -> tuple[int, int | None]:
        """Processes (tasks) the sandbox holds, and how many it may (None: no limit)."""
        group = self._pids_dir()
        try:
            current = int(read(group / "pids.current"))
            raw = read(group / "pids.max").strip()
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot read the process count of {group}: {exc}") from exc
        return current, None if raw == "max" else int(raw)

    @abstractmethod
    def memory_procs(self) -> Path | None:
        """The ``cgroup.procs`` that charges a process's memory alone, if the version has one.

        A process placed only there is charged for the memory it allocates
        but is neither frozen with the sandbox, nor throttled by its CPU
        quota, nor counted against its pids. None: a leaf under the
        sandbox is the only way to be charged.
        """

    @abstractmethod
    def memory_headroom(self) -> int:
        """Bytes the sandbox may still be charged before it runs out of memory.

        The limit less what is charged, plus the file cache the kernel would
        reclaim first (files in tmpfs are not in it: they cannot be reclaimed).
        """

    # -- freezing ----------------------------------------------------------

    @abstractmethod
    def is_frozen(self) -> bool:
        """Whether the sandbox is frozen or being frozen; False once its cgroup is gone."""

    @abstractmethod
    def _freezer_request(self, group: Path, frozen: bool) -> tuple[Path, str]:
        """The control file of ``group`` to write, and the value, to ask for ``frozen``."""

    @abstractmethod
    def _reports_frozen(self, group: Path) -> bool:
        """Whether the kernel reports ``group`` wholly frozen; False once it is gone."""

    async def freeze(self, leaf: str | None = None) -> bool:
        return await self._set_frozen(self.track_dir / leaf if leaf else self.track_dir, True)

    async def thaw(self, leaf: str | None = None) -> bool:
        return await self._set_frozen(self.track_dir / leaf if leaf else self.track_dir, False)

    async def _set_frozen(self, group: Path, frozen: bool) -> bool:
        """Request the state and wait (bounded) until the kernel reports it."""
        control, value = self._freezer_request(group, frozen)
        try:
            write(control, value)
        except OSError as exc:
            raise SandboxError(f"cannot change freezer state of {group}: {exc}") from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FREEZE_TIMEOUT_S
        while loop.time() < deadline:
            if self._reports_frozen(group) == frozen:
                return True
            await asyncio.sleep(POLL_S)
        return False

    # -- killing and removal -----------------------------------------------

    @abstractmethod
    def _kill_at_once(self, group: Path) -> bool:
        """Have the kernel kill every process of ``group``, if the version can; False if not."""

    async def kill(
        self,
        leaf: str | None = None,
        timeout_s: float = EMPTY_TIMEOUT_S,
        spare: int | Collection[int] = (),
    ) -> bool:
        """SIGKILL every process of the sandbox (or leaf); True once none is left.

        Processes are frozen first so none can fork between listing and
        killing. While an ancestor is frozen (a paused sandbox) killed
        processes only disappear after it is thawed; then this returns False.
        ``spare`` are left alive (and may remain).
        """
        group = self.track_dir / leaf if leaf else self.track_dir
        if not group.is_dir() and (leaf or not self.extra_dirs):
            return True
        spared = {spare} if isinstance(spare, int) else set(spare)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if not spared and self._kill_at_once(group):
                pass
            else:
                frozen = group.is_dir() and await self._set_frozen(group, True)
                for pid in self.pids(leaf) - spared:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                if frozen:
                    await self._set_frozen(group, False)
            if not self.pids(leaf) - spared:
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
            for group in list(subtree(top)):
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


class CgroupHost(ABC):
    """The service's view of the cgroup hierarchies it may create sandboxes in."""

    version: ClassVar[CgroupVersion]

    def __init__(self, bases: dict[str, Path]) -> None:
        # Each a per-driver directory (hierarchy.driver_dir): v2 {"": ...}, v1 one per controller.
        self.bases = bases

    @abstractmethod
    def layout(self, sandbox_id: str) -> SandboxCgroup:
        """The cgroups sandbox ``sandbox_id`` has (or would have) here; nothing is created."""

    def _delegate(self, base: Path) -> None:  # noqa: B027 - v1 has nothing to delegate
        """Make the controllers usable beneath ``base`` before it is created; v2 only."""

    def prepare(self) -> None:
        """Create the per-driver directories (and, on v2, delegate the controllers)."""
        for base in self.bases.values():
            try:
                self._delegate(base)
                base.mkdir(parents=True, exist_ok=True)
                # A name of its own per call: concurrent creates probe at once.
                probe = base / f"probe-{os.getpid()}-{secrets.token_hex(6)}"
                probe.mkdir()
                probe.rmdir()
            except SandboxUnavailable:
                raise
            except OSError as exc:
                raise SandboxUnavailable(f"cannot create cgroups under {base}: {exc}") from exc

    def remove_if_empty(self) -> None:
        """Remove this driver's directories (and the shared parent) once unused."""
        for base in self.bases.values():
            for group in (base, base.parent):
                try:
                    group.rmdir()
                except OSError:
                    break  # still in use (by sandboxes or by other drivers)

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
            cgroup.apply_limits(limits)
        except OSError as exc:
            raise SandboxError(f"cannot create cgroups for sandbox {sandbox_id}: {exc}") from exc
        return cgroup
