"""cgroup v1: where a sandbox's groups go, what limits are written, how state is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtools.server.domain.errors import SandboxUnavailable
from runtools.server.sandbox.cgroups import cgroup_from_json
from runtools.server.sandbox.cgroups.hierarchy import Mount
from runtools.server.sandbox.cgroups.v1 import V1Cgroup, V1Host
from runtools.server.sandbox.driver import ResourceLimits

OWN = {"memory": "/svc", "pids": "/", "cpu": "/", "cpuacct": "/", "freezer": "/", "": "/"}


def _mounts(root: Path, *controllers: str) -> list[Mount]:
    found = [Mount(root / "unified", "/", frozenset({"rw"}), "cgroup2")]
    for controller in controllers:
        found.append(Mount(root / controller, "/", frozenset({"rw", controller}), "cgroup"))
    return found


def _host(root: Path) -> V1Host:
    return V1Host.detect(OWN, _mounts(root, "memory", "pids", "cpu", "freezer"), "key")


def test_each_controller_gets_a_driver_directory_beneath_the_own_cgroup(tmp_path: Path) -> None:
    host = _host(tmp_path)
    assert host.version == 1
    assert host.bases == {
        "memory": tmp_path / "memory/svc/runtools-sandboxes/key",
        "pids": tmp_path / "pids/runtools-sandboxes/key",
        "cpu": tmp_path / "cpu/runtools-sandboxes/key",
        "freezer": tmp_path / "freezer/runtools-sandboxes/key",
    }


@pytest.mark.parametrize("missing", ["memory", "pids", "cpu", "freezer"])
def test_a_controller_not_mounted_is_named(tmp_path: Path, missing: str) -> None:
    present = [c for c in ("memory", "pids", "cpu", "freezer") if c != missing]
    with pytest.raises(SandboxUnavailable, match=f"cgroup controller '{missing}' is not mounted"):
        V1Host.detect(OWN, _mounts(tmp_path, *present), "key")


def test_a_sandbox_is_tracked_in_the_freezer_and_limited_in_the_others(tmp_path: Path) -> None:
    cgroup = _host(tmp_path).layout("sbx")
    assert cgroup.track_dir == tmp_path / "freezer/runtools-sandboxes/key/sbx"
    assert cgroup.extra_dirs == (
        tmp_path / "memory/svc/runtools-sandboxes/key/sbx",
        tmp_path / "pids/runtools-sandboxes/key/sbx",
        tmp_path / "cpu/runtools-sandboxes/key/sbx",
    )
    assert cgroup.memory_procs() == cgroup.extra_dirs[0] / "cgroup.procs"
    assert not cgroup.exists()


def test_create_writes_the_limits(tmp_path: Path) -> None:
    host = _host(tmp_path)
    host.prepare()
    cgroup = host.create("sbx", ResourceLimits(vcpus=1.5, memory_mib=256, pids=77))
    memory, pids, cpu = cgroup.extra_dirs
    assert (memory / "memory.limit_in_bytes").read_text() == str(256 * 1024 * 1024)
    assert not (memory / "memory.memsw.limit_in_bytes").exists()  # only where swap is accounted
    assert (pids / "pids.max").read_text() == "77"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "150000"
    assert cgroup.exists()
    assert host.existing_ids() == {"sbx"}


def test_swap_is_limited_with_memory_and_cpu_has_a_floor(tmp_path: Path) -> None:
    cgroup = _host(tmp_path).layout("sbx")
    for directory in (cgroup.track_dir, *cgroup.extra_dirs):
        directory.mkdir(parents=True)
    (cgroup.extra_dirs[0] / "memory.memsw.limit_in_bytes").write_text("")
    cgroup.apply_limits(ResourceLimits(vcpus=0.001, memory_mib=64))
    assert (cgroup.extra_dirs[0] / "memory.memsw.limit_in_bytes").read_text() == str(64 << 20)
    assert (cgroup.extra_dirs[2] / "cpu.cfs_quota_us").read_text() == "1000"


def test_headroom_counts_reclaimable_file_cache_of_the_whole_tree(tmp_path: Path) -> None:
    cgroup = V1Cgroup(tmp_path / "freezer", (tmp_path,))
    (tmp_path / "memory.limit_in_bytes").write_text("1000000\n")
    (tmp_path / "memory.usage_in_bytes").write_text("400000\n")
    (tmp_path / "memory.stat").write_text(
        "cache 1\nactive_file 2\ninactive_file 3\ntotal_active_file 100\ntotal_inactive_file 20\n"
    )
    assert cgroup.memory_headroom() == 1000000 - 400000 + 120


@pytest.mark.parametrize(
    ("state", "frozen"), [("THAWED\n", False), ("FREEZING\n", True), ("FROZEN\n", True)]
)
def test_frozen_is_anything_but_thawed(tmp_path: Path, state: str, frozen: bool) -> None:
    cgroup = V1Cgroup(tmp_path, ())
    assert not cgroup.is_frozen()  # gone: not frozen
    (tmp_path / "freezer.state").write_text(state)
    assert cgroup.is_frozen() is frozen


def test_a_recorded_cgroup_reads_back_as_it_was(tmp_path: Path) -> None:
    cgroup = _host(tmp_path).layout("sbx")
    recorded = {
        "version": 1,
        "track_dir": str(cgroup.track_dir),
        "extra_dirs": [str(d) for d in cgroup.extra_dirs],
    }
    assert cgroup.to_json() == recorded  # the format state.json holds across restarts
    assert cgroup_from_json(recorded) == cgroup
    assert isinstance(cgroup_from_json(recorded), V1Cgroup)
