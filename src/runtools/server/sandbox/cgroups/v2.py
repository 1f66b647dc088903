"""cgroup v2: one unified hierarchy, limits on the sandbox, processes in leaves.

Layout of one sandbox, ``<id>``, under the per-driver directory: limits on
``<id>``; processes live in leaves ``<id>/init`` and ``<id>/exec-N``
(``<id>`` enables no controllers for its children, so the "no internal
processes" rule does not apply and ``<id>`` limits the sum).

The controllers must be enabled in every ancestor's ``subtree_control``,
starting at the service's own cgroup; the kernel refuses that while the own
cgroup holds processes (unless it is the root), so a v2 service must run in
a delegated cgroup with its processes in a leaf.

Not here: finding the service's own cgroup (``hierarchy``), what is done
alike on v1 (``base``), anything of v1.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from runtools.server.domain.errors import SandboxUnavailable
from runtools.server.sandbox.cgroups.base import (
    CFS_PERIOD_US,
    CgroupHost,
    SandboxCgroup,
    cpu_quota_us,
    reclaimable_file_cache,
)
from runtools.server.sandbox.cgroups.files import read, write
from runtools.server.sandbox.cgroups.hierarchy import (
    CgroupVersion,
    Mount,
    directory_of,
    driver_dir,
)
from runtools.server.sandbox.driver import ResourceLimits

__all__ = ["CONTROLLERS", "V2Cgroup", "V2Host"]

#: What the sandboxes' cgroups limit, enabled for them down from the service's own.
CONTROLLERS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class V2Cgroup(SandboxCgroup):
    """``track_dir`` is the sandbox's one cgroup; there are no ``extra_dirs``."""

    version: ClassVar[CgroupVersion] = 2

    def apply_limits(self, limits: ResourceLimits) -> None:
        group = self.track_dir
        write(group / "memory.max", str(limits.memory_mib * 1024 * 1024))
        # No swap: the memory limit must be a real ceiling.
        if (group / "memory.swap.max").exists():
            write(group / "memory.swap.max", "0")
        write(group / "pids.max", str(limits.pids))
        write(group / "cpu.max", f"{cpu_quota_us(limits)} {CFS_PERIOD_US}")

    def _pids_dir(self) -> Path:
        return self.track_dir

    def memory_procs(self) -> Path | None:
        return None  # one hierarchy: memory is charged where the process is

    def memory_headroom(self) -> int:
        group = self.track_dir
        raw = read(group / "memory.max").strip()
        limit = int(raw) if raw != "max" else 1 << 62
        used = int(read(group / "memory.current"))
        return limit - used + reclaimable_file_cache(group / "memory.stat", "")

    def is_frozen(self) -> bool:
        try:
            return read(self.track_dir / "cgroup.freeze").strip() == "1"
        except FileNotFoundError:
            return False

    def _freezer_request(self, group: Path, frozen: bool) -> tuple[Path, str]:
        return group / "cgroup.freeze", "1" if frozen else "0"

    def _reports_frozen(self, group: Path) -> bool:
        try:
            return "frozen 1" in read(group / "cgroup.events").splitlines()
        except FileNotFoundError:
            return False

    def _kill_at_once(self, group: Path) -> bool:
        if not (group / "cgroup.kill").exists():
            return False  # before Linux 5.14: freeze, list, kill
        with contextlib.suppress(FileNotFoundError):
            write(group / "cgroup.kill", "1")
        return True


class V2Host(CgroupHost):
    """Bases: ``{"": <own cgroup>/runtools-sandboxes/<driver key>}``."""

    version: ClassVar[CgroupVersion] = 2

    @classmethod
    def detect(cls, own: dict[str, str], unified_root: Path, driver_key: str) -> V2Host:
        """The per-driver directory from the service's own path in the unified hierarchy."""
        mount = Mount(unified_root, "/", frozenset(), "cgroup2")
        return cls({"": driver_dir(directory_of(mount, own.get("", "/")), driver_key)})

    def layout(self, sandbox_id: str) -> V2Cgroup:
        return V2Cgroup(self.bases[""] / sandbox_id)

    def _delegate(self, base: Path) -> None:
        own = base.parent.parent  # see hierarchy.driver_dir
        wanted = " ".join(f"+{c}" for c in CONTROLLERS)
        available = set(read(own / "cgroup.controllers").split())
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            raise SandboxUnavailable(
                f"cgroup controllers {', '.join(missing)} are not available in {own}"
            )
        for group in (own, base.parent):
            group.mkdir(exist_ok=True)
            enabled = set(read(group / "cgroup.subtree_control").split())
            if not set(CONTROLLERS) <= enabled:
                try:
                    write(group / "cgroup.subtree_control", wanted)
                except OSError as exc:
                    raise SandboxUnavailable(
                        f"cannot enable cgroup controllers in {group} "
                        f"(the service must run in a delegated cgroup): {exc}"
                    ) from exc
        base.mkdir(exist_ok=True)
        if not set(CONTROLLERS) <= set(read(base / "cgroup.subtree_control").split()):
            write(base / "cgroup.subtree_control", wanted)
