"""How a command gets into a running sandbox.

The chain, each step ``exec``-ing the next::

    /bin/sh -c JOIN ...      host: write own pid into the sandbox's cgroups
    nsenter --mount=... ...  host, root: join the sandbox's namespaces
                             (fds opened from a verified /proc/<pid>), chroot
                             into its root, fork into its PID namespace
    setpriv ...              sandbox userland: become the sandbox uid/gid, no
                             supplementary groups, no capabilities (bounding
                             and inheritable sets emptied), no_new_privs
    env -i -C CWD K=V ...    as the sandbox user: clean environment, cwd
    /bin/sh -c COMMAND

Joining cgroups before anything else means every descendant is accounted
and killable. The user's environment is applied only by the last,
unprivileged step: no host-side root process ever sees ``LD_PRELOAD`` or
the like from the caller.

Not here: starting a sandbox (``layout``, ``local``), following the command once it
runs (``process``, ``output``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtools.server.domain.errors import InvalidRequest

__all__ = [
    "HOST_ENV",
    "JOIN_FAILED",
    "NamespaceFds",
    "check_env",
    "exec_argv",
    "join_cgroups_argv",
    "open_namespaces",
]

HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
JOIN_FAILED = "runtools: cannot join sandbox cgroup"
JOIN_EXIT_CODE = 125
_JOIN_SCRIPT = (
    'while [ "$1" != -- ]; do '
    f'echo $$ > "$1" || {{ echo "{JOIN_FAILED} $1" >&2; exit {JOIN_EXIT_CODE}; }}; '
    'shift; done; shift; exec "$@"'
)
# (name under /proc/<pid>/ns, nsenter option)
NAMESPACES = (
    ("mnt", "--mount"),
    ("uts", "--uts"),
    ("ipc", "--ipc"),
    ("net", "--net"),
    ("pid", "--pid"),
    ("cgroup", "--cgroup"),
)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class NamespaceFds:
    """Open handles on a sandbox's namespaces and root, passed to ``nsenter``."""

    namespaces: dict[str, int] = field(default_factory=dict)
    root: int = -1

    def all(self) -> list[int]:
        fds = list(self.namespaces.values())
        return [*fds, self.root] if self.root >= 0 else fds

    def close(self) -> None:
        for fd in self.all():
            os.close(fd)
        self.namespaces.clear()
        self.root = -1


def open_namespaces(proc_fd: int) -> NamespaceFds:
    """Open the namespaces and root of the process behind ``proc_fd``."""
    fds = NamespaceFds()
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        for name, _ in NAMESPACES:
            fds.namespaces[name] = os.open(f"ns/{name}", flags, dir_fd=proc_fd)
        fds.root = os.open("root", flags | os.O_DIRECTORY, dir_fd=proc_fd)
    except BaseException:
        fds.close()
        raise
    return fds


def join_cgroups_argv(procs_files: Iterable[Path], argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` so the process joins the cgroups before it can fork."""
    return ["/bin/sh", "-c", _JOIN_SCRIPT, "sh", *map(str, procs_files), "--", *argv]


def check_env(env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not ENV_NAME.fullmatch(name):
            raise InvalidRequest(f"invalid environment variable name {name!r}")
        if "\0" in value:
            raise InvalidRequest(f"environment variable {name} contains a NUL byte")


def exec_argv(
    *,
    nsenter: str,
    fds: NamespaceFds,
    uid: int,
    gid: int,
    cwd: str,
    env: Mapping[str, str],
    command: str,
) -> list[str]:
    if "\0" in command:
        raise InvalidRequest("command contains a NUL byte")
    if not cwd.startswith("/") or "\0" in cwd:
        raise InvalidRequest("cwd must be an absolute path")
    check_env(env)
    # The fds are named through the service's own fd table instead of being
    # inherited: inherited copies would stay open in the user's command.
    # The caller keeps them open until the command has ended.
    own = f"/proc/{os.getpid()}/fd"
    ns_args = [f"{opt}={own}/{fds.namespaces[name]}" for name, opt in NAMESPACES]
    root = f"{own}/{fds.root}"
    return [
        nsenter,
        *ns_args,
        f"--root={root}",
        f"--wd={root}",
        "--",
        "/usr/bin/setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        "/usr/bin/env",
        "-i",
        "-C",
        cwd,
        "--",
        *(f"{k}={v}" for k, v in env.items()),
        "/bin/sh",
        "-c",
        command,
    ]
