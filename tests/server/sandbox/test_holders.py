"""Which service process holds a driver's sandboxes alone: real file locks, real processes."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from runtools.server.sandbox.holders import Holders

pytestmark = pytest.mark.anyio

# A process that joins, says so, and holds on until killed.
HOLD = """
import asyncio, sys, time
from pathlib import Path
from runtools.server.sandbox.holders import Holders

async def main():
    async with Holders(Path(sys.argv[1])).joining() as alone:
        print("alone" if alone else "beside others", flush=True)
    time.sleep(600)

asyncio.run(main())
"""


def _spawn(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True
    )


def _holder(root: Path) -> tuple[subprocess.Popen[str], str]:
    process = _spawn(root)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


async def test_the_first_process_is_alone_and_a_second_is_not(tmp_path: Path) -> None:
    first, said = _holder(tmp_path)
    try:
        assert said == "alone"
        async with Holders(tmp_path).joining() as alone:
            assert not alone
    finally:
        first.kill()
        first.wait()


async def test_a_killed_holder_no_longer_counts(tmp_path: Path) -> None:
    # kill -9, as a crashed worker: the kernel drops its lock.
    crashed, said = _holder(tmp_path)
    assert said == "alone"
    crashed.send_signal(signal.SIGKILL)
    crashed.wait()
    holders = Holders(tmp_path)
    async with holders.joining() as alone:
        assert alone
    assert holders.leave()


async def test_only_the_last_to_leave_is_told_so(tmp_path: Path) -> None:
    first, second = Holders(tmp_path), Holders(tmp_path)
    async with first.joining() as alone:
        assert alone
    async with second.joining() as alone:
        assert not alone
    assert not first.leave()
    assert second.leave()
    assert not second.leave()  # leaving twice: nothing held any more


async def test_a_joiner_waits_for_the_first_to_finish_joining(tmp_path: Path) -> None:
    # The first one's clean-up runs before a second process may start serving.
    first = Holders(tmp_path)
    async with first.joining():
        process = _spawn(tmp_path)
        try:
            await anyio.sleep(0.5)
            assert process.poll() is None
            assert process.stdout is not None
            # Nothing said yet: it is still waiting at the gate.
            ready, _, _ = select.select([process.stdout], [], [], 0)
            assert not ready
        except BaseException:
            process.kill()
            raise
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "beside others"
    finally:
        process.kill()
        process.wait()
    assert first.leave()
