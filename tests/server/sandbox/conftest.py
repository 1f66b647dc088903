"""Fixtures for the sandbox driver tests: real namespaces and cgroups, no mocks.

The tests need root. Without root they are skipped; any other missing piece
(bubblewrap, cgroup controllers) makes them fail, never pass silently.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from runtools.server.sandbox import (
    DEFAULT_TEMPLATE,
    LocalSandboxDriver,
    ResourceLimits,
    SandboxSpec,
)
from runtools.server.sandbox.templates import TemplateStore
from support.rootfs import build_rootfs, rootfs_tar

CGROUP_ROOT = Path("/sys/fs/cgroup")


@pytest.fixture(autouse=True)
def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("sandbox tests need root (namespaces and cgroups)")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


#: A template imported once per session (``templates``): a minimal root
#: filesystem of the host's programs and Python, told apart by its os-release.
TINY = "tiny"


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> TemplateStore:
    """Templates every driver of the session shares: the host's and ``tiny``."""
    if os.geteuid() != 0:
        pytest.skip("sandbox tests need root (namespaces and cgroups)")
    base = tmp_path_factory.mktemp("templates")
    rootfs = base / "rootfs"
    rootfs.mkdir()
    build_rootfs(rootfs, python=True)
    store = TemplateStore(base / "store")
    store.import_tar(TINY, rootfs_tar(rootfs, base / "tiny.tar", compress=False))
    return store


@pytest.fixture
async def driver(tmp_path: Path, templates: TemplateStore) -> AsyncIterator[LocalSandboxDriver]:
    drv = LocalSandboxDriver(tmp_path / "driver-state", templates=templates)
    await drv.check_available()
    yield drv
    await drv.reap_orphans(set())


SMALL = ResourceLimits(vcpus=1.0, memory_mib=256, disk_mib=64, pids=128)


def new_id() -> str:
    return f"t-{secrets.token_hex(4)}"


MakeSandbox = Callable[..., Awaitable[str]]


@pytest.fixture
def make_sandbox(driver: LocalSandboxDriver) -> MakeSandbox:
    """Create a sandbox (default: small limits); the driver fixture reaps it."""

    async def make(
        resources: ResourceLimits = SMALL,
        env: dict[str, str] | None = None,
        template: str = DEFAULT_TEMPLATE,
    ) -> str:
        sandbox_id = new_id()
        spec = SandboxSpec(template=template, env=env or {}, resources=resources)
        await driver.create(sandbox_id, spec)
        return sandbox_id

    return make


@pytest.fixture
async def sandbox(make_sandbox: MakeSandbox) -> str:
    return await make_sandbox()


def find_cgroup_dirs(sandbox_id: str) -> list[Path]:
    """Every cgroup directory named after the sandbox, in any hierarchy."""
    found = []
    for dirpath, dirnames, _ in os.walk(CGROUP_ROOT):
        for name in dirnames:
            if name == sandbox_id:
                found.append(Path(dirpath) / name)
    return found


def sandbox_host_pids(sandbox_id: str) -> set[int]:
    pids: set[int] = set()
    for top in find_cgroup_dirs(sandbox_id):
        for dirpath, _, filenames in os.walk(top):
            if "cgroup.procs" in filenames:
                text = (Path(dirpath) / "cgroup.procs").read_text()
                pids.update(int(p) for p in text.split())
    return pids


@pytest.fixture
def cgroup_dirs() -> Callable[[str], list[Path]]:
    return find_cgroup_dirs


@pytest.fixture
def host_pids() -> Callable[[str], set[int]]:
    return sandbox_host_pids
