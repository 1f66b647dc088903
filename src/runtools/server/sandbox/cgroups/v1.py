"""cgroup v1: one hierarchy per controller, the freezer carrying the leaves.

Layout of one sandbox, ``<id>``, each under the per-driver directory of its
controller's hierarchy: limits on ``memory/<id>``, ``pids/<id>`` and
``cpu/<id>``, which hold the processes directly; the freezer hierarchy
carries the leaves (``freezer/<id>/init``, ``freezer/<id>/exec-N``) and is
used to pause the sandbox and to find every process of one command. A
process joins the three limit groups and one freezer leaf.

Not here: finding the service's own cgroup (``hierarchy``), what is done
alike on v2 (``base``), anything of v2.
"""

from __future__ import annotations

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
from runtools.server.sandbox.cgroups.hierarchy import CgroupVersion, Mount, directory_of, driver_dir
from runtools.server.sandbox.driver import ResourceLimits

__all__ = ["LIMIT_CONTROLLERS", "V1Cgroup", "V1Host"]

#: The hierarchies that hold a sandbox's limits, in the order of ``extra_dirs``.
LIMIT_CONTROLLERS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class V1Cgroup(SandboxCgroup):
    """``track_dir`` in the freezer hierarchy; ``extra_dirs`` memory, pids and cpu."""

    version: ClassVar[CgroupVersion] = 1

    @property
    def memory_dir(self) -> Path:
        return self.extra_dirs[0]

    def apply_limits(self, limits: ResourceLimits) -> None:
        memory_dir, pids_dir, cpu_dir = self.extra_dirs
        memory = str(limits.memory_mib * 1024 * 1024)
        write(memory_dir / "memory.limit_in_bytes", memory)
        if (memory_dir / "memory.memsw.limit_in_bytes").exists():
            write(memory_dir / "memory.memsw.limit_in_bytes", memory)
        write(pids_dir / "pids.max", str(limits.pids))
        write(cpu_dir / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        write(cpu_dir / "cpu.cfs_quota_us", str(cpu_quota_us(limits)))

    def _pids_dir(self) -> Path:
        return self.extra_dirs[1]

    def memory_procs(self) -> Path | None:
        return self.memory_dir / "cgroup.procs"

    def memory_headroom(self) -> int:
        group = self.memory_dir
        limit = int(read(group / "memory.limit_in_bytes"))
        used = int(read(group / "memory.usage_in_bytes"))
        return limit - used + reclaimable_file_cache(group / "memory.stat", "total_")

    def is_frozen(self) -> bool:
        try:
            return read(self.track_dir / "freezer.state").strip() != "THAWED"
        except FileNotFoundError:
            return False

    def _freezer_request(self, group: Path, frozen: bool) -> tuple[Path, str]:
        return group / "freezer.state", "FROZEN" if frozen else "THAWED"

    def _reports_frozen(self, group: Path) -> bool:
        try:
            return read(group / "freezer.state").strip() == "FROZEN"
        except FileNotFoundError:
            return False

    def _kill_at_once(self, group: Path) -> bool:
        return False  # no cgroup.kill: freeze, list, kill


class V1Host(CgroupHost):
    """Bases: a per-driver directory per controller: memory, pids, cpu and freezer."""

    version: ClassVar[CgroupVersion] = 1

    @classmethod
    def detect(cls, own: dict[str, str], mounts: list[Mount], driver_key: str) -> V1Host:
        """The per-driver directories from the service's own paths and the mounts."""
        bases: dict[str, Path] = {}
        v1_mounts = [m for m in mounts if m.fstype == "cgroup"]
        for controller in (*LIMIT_CONTROLLERS, "freezer"):
            found = next((m for m in v1_mounts if controller in m.options), None)
            if found is None or controller not in own:
                raise SandboxUnavailable(f"cgroup controller {controller!r} is not mounted")
            bases[controller] = driver_dir(directory_of(found, own[controller]), driver_key)
        return cls(bases)

    def layout(self, sandbox_id: str) -> V1Cgroup:
        return V1Cgroup(
            self.bases["freezer"] / sandbox_id,
            tuple(self.bases[c] / sandbox_id for c in LIMIT_CONTROLLERS),
        )
