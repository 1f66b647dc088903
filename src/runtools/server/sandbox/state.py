"""The driver's on-disk record of its sandboxes, used to clean up after a restart.

Layout under the driver's root (mode 0700)::

    sandboxes/<id>/state.json   uid, PID 1 identity, cgroup dirs, base env
    sandboxes/<id>/bwrap.log    bubblewrap's own messages (startup errors)
    sandboxes/<id>/disk.img     the sandbox's disk: a sparse ext4 image
    blank-disks/<MiB>.img       the empty disk that new disks of its size copy
    uids/<uid> -> <id>          uid reservations (symlink creation is atomic)
    uid-cursor                  where the next uid allocation starts

Sandbox files live here only inside ``disk.img``, mounted in the
sandbox's own mount namespace alone, never read by the driver. Nor do records the API
shows: those are the database's; this record is the driver's own, to find
and free what a sandbox holds on this host.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtools.server.domain.errors import SandboxError, SandboxStateConflict
from runtools.server.sandbox.cgroups import SandboxCgroup, cgroup_from_json
from runtools.server.sandbox.identity import ProcessRef
from runtools.server.sandbox.residue import find_residue

__all__ = ["SANDBOX_ID", "SandboxState", "StateStore"]

# Ids become directory names (state, cgroups): no separators, no dot-names.
SANDBOX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


@dataclass
class SandboxState:
    sandbox_id: str
    uid: int
    gid: int
    cgroup: SandboxCgroup
    env: dict[str, str] = field(default_factory=dict)
    init: ProcessRef | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.sandbox_id,
            "uid": self.uid,
            "gid": self.gid,
            "cgroup": self.cgroup.to_json(),
            "env": self.env,
            "init": None
            if self.init is None
            else {"pid": self.init.pid, "start_time": self.init.start_time},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxState:
        init = data.get("init")
        return cls(
            sandbox_id=str(data["id"]),
            uid=int(data["uid"]),
            gid=int(data["gid"]),
            cgroup=cgroup_from_json(data["cgroup"]),
            env={str(k): str(v) for k, v in data.get("env", {}).items()},
            init=None if init is None else ProcessRef(int(init["pid"]), int(init["start_time"])),
        )


class StateStore:
    def __init__(self, root: Path) -> None:
        self._sandboxes = root / "sandboxes"
        self._uids = root / "uids"
        self._cursor = root / "uid-cursor"

    def prepare(self) -> None:
        for d in (self._sandboxes.parent, self._sandboxes, self._uids):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)

    def dir(self, sandbox_id: str) -> Path:
        return self._sandboxes / sandbox_id

    def ids(self) -> set[str]:
        with contextlib.suppress(FileNotFoundError):
            return {p.name for p in self._sandboxes.iterdir() if SANDBOX_ID.fullmatch(p.name)}
        return set()

    def create_dir(self, sandbox_id: str) -> Path:
        path = self.dir(sandbox_id)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError as exc:
            raise SandboxStateConflict(f"sandbox {sandbox_id} already exists") from exc
        return path

    def save(self, state: SandboxState) -> None:
        path = self.dir(state.sandbox_id) / "state.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state.to_json(), f)
        tmp.replace(path)  # atomic: a crash leaves the old or the new record

    def load(self, sandbox_id: str) -> SandboxState | None:
        if not SANDBOX_ID.fullmatch(sandbox_id):
            return None
        try:
            with open(self.dir(sandbox_id) / "state.json") as f:
                return SandboxState.from_json(json.load(f))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SandboxError(f"corrupt state for sandbox {sandbox_id}: {exc}") from exc

    def remove(self, sandbox_id: str) -> None:
        shutil.rmtree(self.dir(sandbox_id), ignore_errors=True)

    def allocate_uid(
        self,
        sandbox_id: str,
        base: int,
        count: int,
        residue: Callable[[int], list[str]] = find_residue,
    ) -> int:
        """Reserve a host uid no other sandbox uses and nothing of an earlier one holds.

        Uids are handed out in turn from where the last allocation stopped
        (a cursor kept beside the reservations), so a uid comes back only
        after every other one has been used; a free uid that still has
        ``residue`` (processes, keys, IPC of an earlier holder) is skipped.
        """
        start = self._read_cursor(count)
        skipped: list[str] = []
        for step in range(count):
            uid = base + (start + step) % count
            try:
                os.symlink(sandbox_id, self._uids / str(uid))
            except FileExistsError:
                continue
            # Checked once reserved, so no other allocation races the check.
            left = residue(uid)
            if left:
                self.release_uid(uid, sandbox_id)
                skipped.append(f"{uid} ({'; '.join(left)})")
                continue
            self._write_cursor((start + step + 1) % count)
            return uid
        if skipped:
            raise SandboxError(
                f"no clean sandbox uid: the free ones still hold an earlier sandbox's "
                f"residue: {', '.join(skipped[:3])}"
            )
        raise SandboxError(f"all {count} sandbox uids are in use")

    def _read_cursor(self, count: int) -> int:
        with contextlib.suppress(OSError, ValueError):
            return int(self._cursor.read_text()) % count
        return 0

    def _write_cursor(self, offset: int) -> None:
        tmp = self._cursor.with_suffix(".tmp")
        tmp.write_text(str(offset))
        tmp.replace(self._cursor)

    def release_uid(self, uid: int, sandbox_id: str) -> None:
        link = self._uids / str(uid)
        with contextlib.suppress(OSError):
            if os.readlink(link) == sandbox_id:
                link.unlink()

    def release_uids_except(self, live_ids: set[str]) -> None:
        with contextlib.suppress(FileNotFoundError):
            for link in self._uids.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(link) not in live_ids:
                        link.unlink()
