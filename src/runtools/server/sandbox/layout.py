"""What a sandbox sees: its filesystem, identity files and base environment.

Only the host userland is shared, read-only: ``/usr`` and the top-level
``/bin``, ``/sbin``, ``/lib*`` (recreated as the same symlinks on merged-/usr
hosts), plus an allowlist of non-secret ``/etc`` entries that programs need
to run (dynamic linker cache, ``alternatives`` symlinks, CA certificates,
time zone, MIME types, Python site config). ``passwd``, ``group``, ``hosts``,
``hostname`` and ``nsswitch.conf`` are generated, so host accounts and
names do not leak. Writable: ``/workspace``, ``/tmp`` and ``/home/user``,
each a private size-limited tmpfs. ``/proc`` is the sandbox's own (its PID
namespace), ``/dev`` a minimal set of safe nodes, ``/sys`` is absent.

Not here: entering a running sandbox (``enter``), its limits (``cgroups``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from runtools.server.domain.errors import InvalidRequest
from runtools.server.sandbox.driver import DEFAULT_TEMPLATE, SandboxSpec

__all__ = [
    "HOME",
    "HOSTNAME",
    "WRITABLE_ROOTS",
    "base_env",
    "bwrap_argv",
    "etc_files",
    "init_argv",
]

HOSTNAME = "sandbox"
USER = "user"
HOME = "/home/user"
WORKSPACE = "/workspace"
TMP = "/tmp"  # noqa: S108 - the sandbox's own private tmpfs
WRITABLE_ROOTS = (WORKSPACE, TMP, HOME)
TEMPLATES = (DEFAULT_TEMPLATE,)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

HOST_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Needed by ordinary programs and free of secrets. Deliberately absent:
# shadow files, ssh, sudoers, ssl/private, package manager credentials.
HOST_ETC_ALLOWLIST = (
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates.conf",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/protocols",
    "/etc/services",
    "/etc/inputrc",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/python3",
    "/etc/python3.11",
    "/etc/python3.12",
    "/etc/python3.13",
)


def check_template(template: str) -> None:
    if template not in TEMPLATES:
        raise InvalidRequest(f"unknown sandbox template {template!r}")


def base_env() -> dict[str, str]:
    """The environment every command starts from; nothing of the service's leaks."""
    return {"PATH": PATH, "HOME": HOME, "LANG": "C.UTF-8"}


def etc_files(uid: int, gid: int) -> dict[str, bytes]:
    """Generated identity files: the sandbox user, not the host's accounts."""
    return {
        "/etc/passwd": (
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"{USER}:x:{uid}:{gid}:{USER}:{HOME}:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ).encode(),
        "/etc/group": (f"root:x:0:\n{USER}:x:{gid}:\nnogroup:x:65534:\n").encode(),
        "/etc/hosts": (
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{HOSTNAME}\n"
        ).encode(),
        "/etc/hostname": f"{HOSTNAME}\n".encode(),
        "/etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files\n",
    }


def init_argv() -> list[str]:
    """The sandbox's long-lived process: it only keeps the namespaces alive.

    It runs as root without capabilities, so the sandbox user can neither
    signal nor trace it; if it dies, the PID namespace and everything in it
    is torn down by the kernel.
    """
    return ["/usr/bin/sleep", "infinity"]


def _host_system_args() -> list[str]:
    args: list[str] = []
    for path in HOST_SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    # bwrap creates missing parents as 0700, unusable by the sandbox user.
    parents = sorted({os.path.dirname(p) for p in HOST_ETC_ALLOWLIST})
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    for path in HOST_ETC_ALLOWLIST:
        if os.path.lexists(path):
            args += ["--ro-bind-try", path, path]
    return args


def bwrap_argv(
    bwrap: str,
    spec: SandboxSpec,
    *,
    etc_fds: Mapping[str, int],
    info_fd: int | None,
    command: Sequence[str] | None = None,
) -> list[str]:
    """The bubblewrap command line for a sandbox (without the cgroup wrapper).

    ``etc_fds`` maps generated file paths to readable fds holding their
    content; ``info_fd`` receives bwrap's JSON with the host pid of the
    sandbox's PID 1. ``command`` replaces the init program (for probes).
    """
    check_template(spec.template)
    disk = str(spec.resources.disk_mib * 1024 * 1024)
    args = [
        bwrap,
        # No user namespace: the namespaces belong to the host's root, and the
        # sandbox user is a plain unprivileged host uid (set when entering).
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",  # only a loopback interface
        "--unshare-uts",
        "--unshare-cgroup",
        "--hostname",
        HOSTNAME,
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--setenv",
        "PATH",
        PATH,
        *_host_system_args(),
    ]
    for path, fd in sorted(etc_fds.items()):
        args += ["--perms", "0644", "--ro-bind-data", str(fd), path]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "0755",
        "--dir",
        "/home",
        # Private, size-limited tmpfs mounts; they live in the sandbox's mount
        # namespace only and vanish with it. Their pages count against the
        # sandbox's memory limit.
        "--size",
        disk,
        "--perms",
        "0755",
        "--tmpfs",
        WORKSPACE,
        "--size",
        disk,
        "--perms",
        "0700",
        "--tmpfs",
        HOME,
        "--size",
        disk,
        "--perms",
        "1777",
        "--tmpfs",
        TMP,
        "--chdir",
        "/",
    ]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    return [*args, "--", *(command if command is not None else init_argv())]
