"""Limits, freezing and whole-tree killing with cgroups (v2, or v1 controllers).

Sandboxes are created only beneath the service's own cgroup (read from
``/proc/self/cgroup``), never at a hierarchy root, in a directory per driver:
``<own cgroup>/runtools-sandboxes/<driver key>/<sandbox id>``.

A leaf per command is what makes a timeout kill complete: a process cannot
leave its cgroup, so ``setsid``/double-forked descendants are still found.

What the driver uses is here: ``detect_host`` (which version this host
runs, and where this driver's sandboxes go), the ``CgroupHost`` it returns,
the ``SandboxCgroup`` of each sandbox and ``cgroup_from_json`` to read one
back after a restart; ``own_memory_limit`` sizes the node's budget.

- ``base``: that interface, and what both versions do alike;
- ``v1``, ``v2``: each version's layout, control files and limits;
- ``hierarchy``: mounts, the service's own cgroup, the per-driver
  directory, the choice of version, ``own_memory_limit``;
- ``files``: reading and writing control files.

Not here: processes, namespaces or the driver's state (``runtools.server.sandbox``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtools.server.domain.errors import SandboxUnavailable
from runtools.server.sandbox.cgroups.base import CgroupHost, SandboxCgroup
from runtools.server.sandbox.cgroups.hierarchy import (
    UNIFIED_ROOT,
    mounts,
    own_memory_limit,
    own_paths,
    version_at,
)
from runtools.server.sandbox.cgroups.v1 import V1Cgroup, V1Host
from runtools.server.sandbox.cgroups.v2 import V2Cgroup, V2Host

__all__ = ["CgroupHost", "SandboxCgroup", "cgroup_from_json", "detect_host", "own_memory_limit"]


def detect_host(driver_key: str, unified_root: Path = UNIFIED_ROOT) -> CgroupHost:
    """Find where to create sandboxes; ``SandboxUnavailable`` names what is missing."""
    try:
        own = own_paths()
        if version_at(unified_root) == 2:
            return V2Host.detect(own, unified_root, driver_key)
        return V1Host.detect(own, mounts(), driver_key)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot inspect cgroups: {exc}") from exc


def cgroup_from_json(data: dict[str, Any]) -> SandboxCgroup:
    """A sandbox's cgroups as ``SandboxCgroup.to_json`` recorded them."""
    track_dir = Path(data["track_dir"])
    if data["version"] == 2:
        return V2Cgroup(track_dir, tuple(Path(d) for d in data["extra_dirs"]))
    return V1Cgroup(track_dir, tuple(Path(d) for d in data["extra_dirs"]))
