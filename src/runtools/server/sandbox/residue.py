"""What a sandbox's host uid can leave behind once the sandbox is gone.

A uid is handed to one sandbox at a time and, much later, to another. The
next holder must find nothing of the previous one. Most of a sandbox dies
with its namespaces: processes (its cgroups are killed), files (its only
writable filesystems, its disk image and a tmpfs, are mounted in its own
mount namespace, and destroy deletes the image), SysV and
POSIX IPC (its own IPC namespace). Kernel keyrings do not: the user and
user-session keyrings of a uid (``@u``, ``@us``) and its persistent keyring
belong to the uid, not to a namespace, and outlive every process.

``clear_keyrings`` invalidates them, as the uid, with keyutils' ``keyctl``;
``find_residue`` says what of a uid is still on the host (processes of the
uid, keys it owns, SysV IPC objects in the host's namespace), and a uid
with residue is not handed out (``StateStore.allocate_uid``). A key the uid
locked against itself cannot be invalidated by anyone: its uid then stays
out of use.

Not here: choosing uids (``state``), killing processes (``cgroups``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

__all__ = ["KEYCTL", "clear_keyrings", "find_residue", "owns_keys", "wait_clean"]

KEYCTL = "/usr/bin/keyctl"
# Run as the uid in a new anonymous session keyring (which dies with it):
# the persistent keyring must be linked somewhere to be named, and the
# user keyrings are named (which creates them if absent) before either is
# invalidated, so the clean-up itself leaves none behind.
_CLEAR_SCRIPT = (
    'p=$(keyctl get_persistent @s 2>/dev/null) && keyctl invalidate "$p"; '
    "u=$(keyctl id @u) && us=$(keyctl id @us) || exit 1; "
    'keyctl invalidate "$us"; keyctl invalidate "$u"'
)
CLEAR_TIMEOUT_S = 5.0
PROC = Path("/proc")


def owns_keys(uid: int, key_users: Path = PROC / "key-users") -> bool:
    """Whether the kernel counts any key (keyrings included) owned by ``uid``."""
    with contextlib.suppress(OSError):
        for line in key_users.read_text().splitlines():
            owner, _, _ = line.partition(":")
            if owner.strip() == str(uid):
                return True
    return False


def _processes_of(uid: int) -> list[int]:
    """Host pids whose real, effective, saved or filesystem uid is ``uid``."""
    found = []
    wanted = str(uid)
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in Path(entry.path, "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if wanted in line.split()[1:]:
                        found.append(int(entry.name))
                    break
    return found


def _ipc_objects_of(uid: int) -> list[str]:
    """SysV IPC objects (host namespace) owned or created by ``uid``."""
    found = []
    for kind in ("shm", "msg", "sem"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            lines = (PROC / "sysvipc" / kind).read_text().splitlines()
            header = lines[0].split()
            columns = [header.index("uid"), header.index("cuid")]
            for line in lines[1:]:
                fields = line.split()
                if any(fields[c] == str(uid) for c in columns):
                    found.append(f"{kind} {fields[1]}")
    return found


def find_residue(uid: int) -> list[str]:
    """What of ``uid`` is still on this host, one phrase per kind; empty if nothing."""
    residue = []
    pids = _processes_of(uid)
    if pids:
        residue.append(f"processes {', '.join(map(str, pids[:5]))}")
    if owns_keys(uid):
        residue.append("kernel keys")
    ipc = _ipc_objects_of(uid)
    if ipc:
        residue.append(f"SysV IPC objects ({', '.join(ipc[:5])})")
    return residue


def clear_keyrings(uid: int, gid: int, keyctl: str = KEYCTL) -> None:
    """Invalidate the keyrings of ``uid`` (and so every key only they hold).

    Best effort: what cannot be invalidated is found by ``find_residue``.
    """
    if not owns_keys(uid):
        return  # the common case: nothing of the uid ever touched a keyring
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(  # noqa: S603 - fixed argv, no shell of the caller's
            [keyctl, "session", "-", "/bin/sh", "-c", _CLEAR_SCRIPT],
            user=uid,
            group=gid,
            extra_groups=[],
            env={"PATH": os.path.dirname(keyctl) + ":/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=CLEAR_TIMEOUT_S,
            check=False,
            close_fds=True,
        )


def wait_clean(uid: int, timeout_s: float) -> bool:
    """Wait (briefly) until the kernel has collected the uid's invalidated keys."""
    deadline = time.monotonic() + timeout_s
    while owns_keys(uid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
