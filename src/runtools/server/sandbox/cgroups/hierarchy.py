"""Where the cgroup hierarchies are, where the service sits in them, what it may use.

Shared by both versions: reading ``/proc/self/mountinfo`` and
``/proc/self/cgroup``, the directory of the service's own cgroup in a
hierarchy, the per-driver directory beneath it
(``<own cgroup>/runtools-sandboxes/<driver key>``), which version a host
runs (``version_at``) and how much memory the service's own cgroup allows
(``own_memory_limit``).

Not here: anything done to a sandbox's cgroups (``v1``, ``v2``), or
creating a directory: this module only reads.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runtools.server.domain.errors import SandboxUnavailable
from runtools.server.sandbox.cgroups.files import read

__all__ = [
    "GROUP_DIR",
    "UNIFIED_ROOT",
    "CgroupVersion",
    "Mount",
    "directory_of",
    "driver_dir",
    "mounts",
    "own_memory_limit",
    "own_paths",
    "parse_mountinfo",
    "parse_own_paths",
    "version_at",
]

CgroupVersion = Literal[1, 2]

#: The directory beneath the service's own cgroup that holds every driver's sandboxes.
GROUP_DIR = "runtools-sandboxes"
#: Where the hierarchy is mounted when the host runs cgroup v2 alone.
UNIFIED_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Mount:
    """One cgroup filesystem mount, as ``/proc/self/mountinfo`` describes it."""

    mountpoint: Path
    root: str
    options: frozenset[str]
    fstype: str


def parse_mountinfo(text: str) -> list[Mount]:
    """Every mount listed in ``/proc/<pid>/mountinfo`` text (lines it cannot read are skipped)."""
    found = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        unescape = fields[4].encode().decode("unicode_escape")
        found.append(
            Mount(
                mountpoint=Path(unescape),
                root=fields[3],
                options=frozenset(tail[2].split(",")),
                fstype=tail[0],
            )
        )
    return found


def mounts() -> list[Mount]:
    return parse_mountinfo(read(Path("/proc/self/mountinfo")))


def parse_own_paths(text: str) -> dict[str, str]:
    """Controller name (``""`` for v2) to the cgroup path, from ``/proc/<pid>/cgroup`` text."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def own_paths() -> dict[str, str]:
    """Controller name (``""`` for v2) to this process's cgroup path."""
    return parse_own_paths(read(Path("/proc/self/cgroup")))


def directory_of(mount: Mount, path: str) -> Path:
    """The directory of cgroup ``path`` in a hierarchy mounted at ``mount``."""
    root = mount.root.rstrip("/")
    if root and not (path == root or path.startswith(root + "/")):
        raise SandboxUnavailable(
            f"own cgroup {path} is not visible under the cgroup mount {mount.mountpoint}"
        )
    return mount.mountpoint / path[len(root) :].lstrip("/")


def driver_dir(own: Path, driver_key: str) -> Path:
    """Where one driver's sandboxes live beneath the service's own cgroup ``own``.

    ``driver_dir(...).parent`` is the directory all drivers share and its
    parent the service's own cgroup.
    """
    return own / GROUP_DIR / driver_key


def version_at(unified_root: Path = UNIFIED_ROOT) -> CgroupVersion:
    """2 when ``unified_root`` is a cgroup v2 hierarchy of its own, else 1.

    A host with v1 controllers and a v2 mount beside them (``unified``)
    counts as v1: limits and the freezer are on the v1 controllers.
    """
    return 2 if (unified_root / "cgroup.controllers").exists() else 1


def own_memory_limit() -> int | None:
    """Bytes this process's cgroup (or an ancestor) may use; None when not limited.

    Sandboxes' cgroups nest under the service's own, so in a memory-limited
    container that limit, not the host's RAM, is what they share.
    """
    try:
        paths = own_paths()
        found = mounts()
    except (OSError, ValueError):
        return None
    limits: list[int] = []
    for mount in found:
        if mount.fstype == "cgroup" and "memory" in mount.options and "memory" in paths:
            own, name = paths["memory"], "memory.limit_in_bytes"
        elif mount.fstype == "cgroup2" and "" in paths:
            own, name = paths[""], "memory.max"
        else:
            continue
        try:
            directory = directory_of(mount, own)
        except SandboxUnavailable:
            continue
        while True:
            with contextlib.suppress(OSError, ValueError):
                raw = read(directory / name).strip()
                if raw != "max" and int(raw) < 1 << 60:  # v1 spells "unlimited" as ~2**63
                    limits.append(int(raw))
            if directory == mount.mountpoint or directory.parent == directory:
                break
            directory = directory.parent
    return min(limits, default=None)
