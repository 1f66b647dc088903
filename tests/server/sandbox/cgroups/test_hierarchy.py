"""Reading where the hierarchies are mounted and where the service sits in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtools.server.domain.errors import SandboxUnavailable
from runtools.server.sandbox.cgroups.hierarchy import (
    Mount,
    directory_of,
    driver_dir,
    parse_mountinfo,
    parse_own_paths,
    version_at,
)

V1_WITH_UNIFIED = """\
12:pids:/
9:name=systemd:/
5:cpu,cpuacct:/
4:memory:/process_api/7f58
1:freezer:/
0::/
"""

MOUNTINFO = """\
25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
28 25 0:25 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
29 25 0:26 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /mnt/with\\040space rw - cgroup cgroup rw,freezer
31 25 0:28 / short
"""


def test_own_paths_name_each_v1_controller_and_the_unified_hierarchy() -> None:
    assert parse_own_paths(V1_WITH_UNIFIED) == {
        "pids": "/",
        "name=systemd": "/",
        "cpu": "/",
        "cpuacct": "/",
        "memory": "/process_api/7f58",
        "freezer": "/",
        "": "/",
    }


def test_own_paths_on_v2_alone() -> None:
    assert parse_own_paths("0::/system.slice/runtools.service/main\n") == {
        "": "/system.slice/runtools.service/main"
    }


def test_a_path_with_colons_is_kept_whole() -> None:
    assert parse_own_paths("0::/odd:name\n") == {"": "/odd:name"}


def test_mountinfo_gives_each_mount_its_type_root_and_options() -> None:
    found = parse_mountinfo(MOUNTINFO)
    assert [m.mountpoint for m in found] == [
        Path("/sys/fs/cgroup"),
        Path("/sys/fs/cgroup/unified"),
        Path("/sys/fs/cgroup/memory"),
        Path("/sys/fs/cgroup/cpu,cpuacct"),
        Path("/mnt/with space"),
    ]  # the line without a " - " separator is skipped
    unified, memory, cpu = found[1], found[2], found[3]
    assert unified.fstype == "cgroup2"
    assert unified.root == "/"
    assert memory.fstype == "cgroup"
    assert "memory" in memory.options
    assert cpu.root == "/docker/abc"
    assert {"cpu", "cpuacct"} <= cpu.options


def test_the_own_cgroup_is_found_beneath_a_mount_of_the_hierarchy_root() -> None:
    mount = Mount(Path("/sys/fs/cgroup/memory"), "/", frozenset({"memory"}), "cgroup")
    assert directory_of(mount, "/process_api/7f58") == Path(
        "/sys/fs/cgroup/memory/process_api/7f58"
    )
    assert directory_of(mount, "/") == Path("/sys/fs/cgroup/memory")


def test_a_mount_of_a_subtree_hides_its_prefix() -> None:
    mount = Mount(Path("/sys/fs/cgroup/cpu"), "/docker/abc", frozenset({"cpu"}), "cgroup")
    assert directory_of(mount, "/docker/abc") == Path("/sys/fs/cgroup/cpu")
    assert directory_of(mount, "/docker/abc/svc") == Path("/sys/fs/cgroup/cpu/svc")


@pytest.mark.parametrize("path", ["/docker/other", "/docker/abcdef", "/"])
def test_an_own_cgroup_outside_the_mounted_subtree_is_unavailable(path: str) -> None:
    mount = Mount(Path("/sys/fs/cgroup/cpu"), "/docker/abc", frozenset({"cpu"}), "cgroup")
    with pytest.raises(SandboxUnavailable, match="is not visible under the cgroup mount"):
        directory_of(mount, path)


def test_each_driver_has_its_own_directory_beneath_the_shared_one() -> None:
    own = Path("/sys/fs/cgroup/memory/svc")
    assert driver_dir(own, "k1") == own / "runtools-sandboxes" / "k1"
    assert driver_dir(own, "k1").parent == driver_dir(own, "k2").parent
    assert driver_dir(own, "k1").parent.parent == own


def test_v2_is_chosen_only_where_the_root_is_a_unified_hierarchy(tmp_path: Path) -> None:
    assert version_at(tmp_path) == 1  # v1 controllers, with or without a "unified" mount beside
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert version_at(tmp_path) == 2
