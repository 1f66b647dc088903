"""Which version a host gets, and reading a sandbox's cgroups back after a restart."""

from __future__ import annotations

from pathlib import Path

from runtools.server.sandbox.cgroups import cgroup_from_json, detect_host
from runtools.server.sandbox.cgroups.hierarchy import own_paths
from runtools.server.sandbox.cgroups.v1 import V1Cgroup
from runtools.server.sandbox.cgroups.v2 import V2Cgroup, V2Host


def test_a_unified_root_gets_the_v2_host_beneath_the_own_cgroup(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    host = detect_host("key", unified_root=tmp_path)
    assert isinstance(host, V2Host)
    own = own_paths().get("", "/").lstrip("/")
    assert host.bases == {"": tmp_path / own / "runtools-sandboxes" / "key"}


def test_state_recorded_by_either_version_reads_back_as_that_version() -> None:
    v1 = {"version": 1, "track_dir": "/f/sbx", "extra_dirs": ["/m/sbx", "/p/sbx", "/c/sbx"]}
    v2 = {"version": 2, "track_dir": "/u/sbx", "extra_dirs": []}
    assert cgroup_from_json(v1) == V1Cgroup(
        Path("/f/sbx"), (Path("/m/sbx"), Path("/p/sbx"), Path("/c/sbx"))
    )
    assert cgroup_from_json(v2) == V2Cgroup(Path("/u/sbx"))
    assert cgroup_from_json(v1) != cgroup_from_json({**v1, "version": 2})
