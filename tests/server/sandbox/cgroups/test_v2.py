"""cgroup v2: delegation down from the own cgroup, limits, freezing and killing.

This host runs v1, so v2 is exercised only here, on directories laid out as
cgroupfs would have them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtools.server.domain.errors import SandboxUnavailable
from runtools.server.sandbox.cgroups import cgroup_from_json
from runtools.server.sandbox.cgroups.v2 import V2Cgroup, V2Host
from runtools.server.sandbox.driver import ResourceLimits

pytestmark = pytest.mark.anyio

ALL = "+memory +pids +cpu"


def _own(root: Path, controllers: str = "cpu io memory pids") -> Path:
    """A delegated own cgroup, and the directories the kernel would fill with control files."""
    own = root / "svc"
    (own / "runtools-sandboxes" / "key").mkdir(parents=True)
    (own / "cgroup.controllers").write_text(controllers + "\n")
    for group in (own, own / "runtools-sandboxes", own / "runtools-sandboxes" / "key"):
        (group / "cgroup.subtree_control").write_text("")
    return own


def _host(root: Path) -> V2Host:
    return V2Host.detect({"": "/svc", "memory": "/elsewhere"}, root, "key")


def test_the_driver_directory_is_beneath_the_own_unified_cgroup(tmp_path: Path) -> None:
    host = _host(tmp_path)
    assert host.version == 2
    assert host.bases == {"": tmp_path / "svc/runtools-sandboxes/key"}
    cgroup = host.layout("sbx")
    assert (cgroup.track_dir, cgroup.extra_dirs) == (host.bases[""] / "sbx", ())
    assert cgroup.memory_procs() is None  # a leaf is the only way to be charged


def test_without_an_own_path_the_root_is_the_own_cgroup(tmp_path: Path) -> None:
    host = V2Host.detect({}, tmp_path, "key")
    assert host.bases == {"": tmp_path / "runtools-sandboxes/key"}


def test_prepare_enables_the_controllers_down_to_the_driver(tmp_path: Path) -> None:
    own = _own(tmp_path)
    _host(tmp_path).prepare()
    for group in (own, own / "runtools-sandboxes", own / "runtools-sandboxes" / "key"):
        assert (group / "cgroup.subtree_control").read_text() == ALL
    assert {p.name for p in (own / "runtools-sandboxes" / "key").iterdir()} == {
        "cgroup.subtree_control"
    }  # the probe is gone


def test_controllers_already_enabled_are_not_written_again(tmp_path: Path) -> None:
    own = _own(tmp_path)
    (own / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    _host(tmp_path).prepare()
    assert (own / "cgroup.subtree_control").read_text() == "cpu io memory pids\n"


def test_missing_controllers_are_named(tmp_path: Path) -> None:
    _own(tmp_path, controllers="io memory")
    with pytest.raises(SandboxUnavailable, match="controllers pids, cpu are not available in"):
        _host(tmp_path).prepare()


def test_an_own_cgroup_that_cannot_delegate_says_so(tmp_path: Path) -> None:
    own = _own(tmp_path)
    (own / "cgroup.subtree_control").unlink()
    # Readable, but writing it fails, as the kernel refuses an own cgroup holding processes.
    (own / "cgroup.subtree_control").symlink_to("/proc/sys/kernel/osrelease")
    with pytest.raises(SandboxUnavailable, match="the service must run in a delegated cgroup"):
        _host(tmp_path).prepare()


def test_create_writes_the_limits(tmp_path: Path) -> None:
    _own(tmp_path)
    host = _host(tmp_path)
    cgroup = host.create("sbx", ResourceLimits(vcpus=0.5, memory_mib=256, pids=77))
    group = cgroup.track_dir
    assert (group / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert not (group / "memory.swap.max").exists()  # only where swap is accounted
    assert (group / "pids.max").read_text() == "77"
    assert (group / "cpu.max").read_text() == "50000 100000"
    assert host.existing_ids() == {"sbx"}


def test_swap_is_turned_off_where_there_is_swap(tmp_path: Path) -> None:
    cgroup = V2Cgroup(tmp_path)
    (tmp_path / "memory.swap.max").write_text("max\n")
    cgroup.apply_limits(ResourceLimits(vcpus=0.0001))
    assert (tmp_path / "memory.swap.max").read_text() == "0"
    assert (tmp_path / "cpu.max").read_text() == "1000 100000"


@pytest.mark.parametrize(
    ("limit", "headroom"), [("1000000\n", 600120), ("max\n", (1 << 62) - 399880)]
)
def test_headroom_counts_reclaimable_file_cache(tmp_path: Path, limit: str, headroom: int) -> None:
    (tmp_path / "memory.max").write_text(limit)
    (tmp_path / "memory.current").write_text("400000\n")
    (tmp_path / "memory.stat").write_text("anon 7\nactive_file 100\ninactive_file 20\n")
    assert V2Cgroup(tmp_path).memory_headroom() == headroom


async def test_freezing_waits_for_the_kernel_to_report_it(tmp_path: Path) -> None:
    cgroup = V2Cgroup(tmp_path)
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert await cgroup.freeze()
    assert (tmp_path / "cgroup.freeze").read_text() == "1"
    assert cgroup.is_frozen()
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert await cgroup.thaw()
    assert (tmp_path / "cgroup.freeze").read_text() == "0"
    assert not cgroup.is_frozen()


async def test_a_kill_uses_cgroup_kill_where_the_kernel_has_it(tmp_path: Path) -> None:
    leaf = tmp_path / "exec-1"
    leaf.mkdir()
    (leaf / "cgroup.kill").write_text("")
    (leaf / "cgroup.procs").write_text("")
    assert await V2Cgroup(tmp_path).kill("exec-1")
    assert (leaf / "cgroup.kill").read_text() == "1"
    assert not (leaf / "cgroup.freeze").exists()  # not frozen first: the kernel kills at once


async def test_a_kill_that_spares_one_process_freezes_instead(tmp_path: Path) -> None:
    leaf = tmp_path / "exec-1"
    leaf.mkdir()
    (leaf / "cgroup.kill").write_text("")
    (leaf / "cgroup.procs").write_text("")
    (leaf / "cgroup.events").write_text("frozen 0\n")
    # Nothing to kill but the spared process; the freeze is asked for and never reported.
    assert await V2Cgroup(tmp_path).kill("exec-1", spare=4242)
    assert (leaf / "cgroup.kill").read_text() == ""
    assert (leaf / "cgroup.freeze").read_text() == "1"


def test_a_recorded_cgroup_reads_back_as_it_was(tmp_path: Path) -> None:
    cgroup = _host(tmp_path).layout("sbx")
    recorded = {"version": 2, "track_dir": str(cgroup.track_dir), "extra_dirs": []}
    assert cgroup.to_json() == recorded  # the format state.json holds across restarts
    assert cgroup_from_json(recorded) == cgroup
    assert isinstance(cgroup_from_json(recorded), V2Cgroup)
