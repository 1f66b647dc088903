"""A sandbox uid comes back to a new sandbox only with nothing of its previous holder.

The kernel's keyrings belong to a uid, not to a namespace: a key added to
``@u`` in one sandbox would be read by the next sandbox on that uid. These
tests use real sandboxes forced onto one uid (a driver with a single uid).
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtools.server.domain.errors import SandboxError
from runtools.server.sandbox import LocalSandboxDriver, SandboxSpec
from runtools.server.sandbox.residue import find_residue, owns_keys
from support.secret_registry import SecretRegistry

from .conftest import SMALL, new_id

pytestmark = pytest.mark.anyio


def _uid_base() -> int:
    # A range of its own per test: uids are host-wide, and a locked key of an
    # earlier run (which only the kernel's expiry removes) must not collide.
    return 1_000_000 + secrets.randbelow(1_000_000) * 4


_AS_UID = ["/usr/bin/setpriv", "--clear-groups"]


def as_uid(uid: int, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` on the host as ``uid``, as an earlier holder of it could."""
    return subprocess.run(
        [*_AS_UID, f"--reuid={uid}", f"--regid={uid}", "/bin/sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.fixture
async def one_uid_driver(tmp_path: Path) -> AsyncIterator[LocalSandboxDriver]:
    drv = LocalSandboxDriver(tmp_path / "one-uid", uid_base=_uid_base(), max_sandboxes=1)
    await drv.check_available()
    yield drv
    await drv.reap_orphans(set())


async def uid_of(driver: LocalSandboxDriver, sandbox_id: str) -> int:
    r = await driver.exec(sandbox_id, "id -u")
    return int(r.stdout)


async def test_the_next_sandbox_on_a_uid_cannot_read_the_previous_holders_key(
    one_uid_driver: LocalSandboxDriver, secret_registry: SecretRegistry
) -> None:
    driver = one_uid_driver
    secret = secret_registry.add(secrets.token_hex(16))
    acme = new_id()
    await driver.create(acme, SandboxSpec(resources=SMALL))
    uid = await uid_of(driver, acme)
    planted = as_uid(uid, f"keyctl add user acme-secret {secret} @u")
    assert planted.returncode == 0, planted.stderr
    assert owns_keys(uid)

    await driver.destroy(acme)
    assert not owns_keys(uid), "destroy leaves the uid's keyrings behind"

    globex = new_id()
    await driver.create(globex, SandboxSpec(resources=SMALL))
    assert await uid_of(driver, globex) == uid, "the uid was not reused: the test proves nothing"
    r = await driver.exec(
        globex, "keyctl print %user:acme-secret; keyctl search @u user acme-secret; cat /proc/keys"
    )
    assert secret not in r.stdout + r.stderr
    assert "acme-secret" not in r.stdout
    # Nor from the host as that uid: the key is gone, not merely hidden.
    seen = as_uid(uid, "keyctl print %user:acme-secret; cat /proc/keys")
    assert secret not in seen.stdout
    await driver.destroy(globex)


async def test_a_uid_whose_key_cannot_be_cleared_is_not_handed_out(tmp_path: Path) -> None:
    base = _uid_base()
    driver = LocalSandboxDriver(tmp_path / "two-uids", uid_base=base, max_sandboxes=2)
    await driver.check_available()
    try:
        acme = new_id()
        await driver.create(acme, SandboxSpec(resources=SMALL))
        uid = await uid_of(driver, acme)
        # A keyring its owner locked (no permission left for anyone): nothing
        # can invalidate it until it expires (the expiry keeps the host tidy).
        locked = as_uid(
            uid,
            "keyctl add user kept x @u >/dev/null && keyctl timeout @u 30 && keyctl setperm @u 0",
        )
        assert locked.returncode == 0, locked.stderr
        await driver.destroy(acme)
        assert find_residue(uid) == ["kernel keys"]

        globex = new_id()
        await driver.create(globex, SandboxSpec(resources=SMALL))
        assert await uid_of(driver, globex) != uid
        await driver.destroy(globex)

        # With no other uid left, create refuses rather than reuse it.
        only = LocalSandboxDriver(tmp_path / "one-uid", uid_base=uid, max_sandboxes=1)
        with pytest.raises(SandboxError, match=rf"no clean sandbox uid.*{uid} \(kernel keys\)"):
            await only.create(new_id(), SandboxSpec(resources=SMALL))
        await only.reap_orphans(set())
    finally:
        await driver.reap_orphans(set())


async def test_uids_are_handed_out_in_turn(tmp_path: Path) -> None:
    base = _uid_base()
    driver = LocalSandboxDriver(tmp_path / "three-uids", uid_base=base, max_sandboxes=3)
    await driver.check_available()
    try:
        seen = []
        for _ in range(4):
            sandbox_id = new_id()
            await driver.create(sandbox_id, SandboxSpec(resources=SMALL))
            seen.append(await uid_of(driver, sandbox_id))
            await driver.destroy(sandbox_id)
        # A destroyed sandbox's uid is the last to come back, not the first.
        assert seen == [base, base + 1, base + 2, base]
    finally:
        await driver.reap_orphans(set())


def test_residue_names_processes_of_the_uid() -> None:
    uid = _uid_base()
    sleeper = subprocess.Popen([*_AS_UID, f"--reuid={uid}", f"--regid={uid}", "sleep", "30"])
    try:
        # setpriv changes its uid before exec'ing sleep; wait for it to show.
        for _ in range(500):
            if find_residue(uid):
                break
            time.sleep(0.01)
        assert find_residue(uid) == [f"processes {sleeper.pid}"]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert find_residue(uid) == []
