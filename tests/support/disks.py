"""What a sandbox's disk leaves on the host: loop devices and mounts, as its tools list them."""

from __future__ import annotations

import subprocess
import time


def loop_devices_naming(fragment: str) -> list[str]:
    """``losetup -a`` lines whose backing file's path holds ``fragment`` (a sandbox id)."""
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if fragment in line]


def host_mounts_naming(fragment: str) -> list[str]:
    """Mounts of the host's own mount table whose source or target holds ``fragment``."""
    out = subprocess.run(
        ["findmnt", "--raw", "--noheadings", "-o", "SOURCE,TARGET"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if fragment in line]


def wait_no_loop_device(fragment: str, timeout_s: float = 10.0) -> list[str]:
    """The loop devices left for ``fragment`` once the kernel had time to clear them."""
    deadline = time.monotonic() + timeout_s
    while (left := loop_devices_naming(fragment)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
