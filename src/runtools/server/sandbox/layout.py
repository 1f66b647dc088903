"""What a sandbox sees: its filesystem, identity files and base environment.

A sandbox's disk (an ext4 image, ``mkfs_argv``) is mounted in a mount
namespace of its own before bubblewrap starts (``sandbox_mounts_argv``);
a sandbox of an imported template has that as ``/``: an overlay of the
template (read-only, shared) and a private writable layer on its disk.
For the host's template, only the host userland is shared, read-only: ``/usr`` and the top-level
``/bin``, ``/sbin``, ``/lib*`` (recreated as the same symlinks on merged-/usr
hosts), plus an allowlist of non-secret ``/etc`` entries that programs need
to run (dynamic linker cache, ``alternatives`` symlinks, CA certificates,
time zone, MIME types, Python site config). ``passwd``, ``group``, ``hosts``,
``hostname`` and ``nsswitch.conf`` are generated, so host accounts and
names do not leak. Writable: ``/workspace`` and ``/home/user`` on the
sandbox's disk, ``/tmp`` a private size-limited tmpfs. ``/proc`` is the sandbox's own (its PID
namespace), ``/dev`` a minimal set of safe nodes, ``/sys`` is absent.

Not here: entering a running sandbox (``enter``), its limits (``cgroups``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from runtools.server.domain.errors import SandboxUnavailable
from runtools.server.sandbox.driver import SandboxSpec
from runtools.server.sandbox.templates import Template

__all__ = [
    "DISK_DIRS",
    "DISK_IMAGE",
    "HOME",
    "HOSTNAME",
    "WRITABLE_ROOTS",
    "base_env",
    "bwrap_argv",
    "etc_files",
    "in_memory",
    "init_argv",
    "layer_directory",
    "mkfs_argv",
    "sandbox_mounts_argv",
]

HOSTNAME = "sandbox"
USER = "user"
HOME = "/home/user"
WORKSPACE = "/workspace"
TMP = "/tmp"  # noqa: S108 - the sandbox's own private tmpfs
WRITABLE_ROOTS = (WORKSPACE, TMP, HOME)
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


# Run on the host, as root, in a mount namespace of its own (``unshare``):
# the sandbox's disk image is loop-mounted on the layer directory, which
# then holds ``/workspace``, the home directory and, for an imported
# template, the overlay's writable layer and the overlay itself (the
# sandbox's root). None of it is ever visible on the host; the mounts
# vanish with the sandbox's last process, and the loop device with them
# (``mount -o loop`` sets it to clear itself once unmounted). ``-n``: no
# mount table file is written (it would land in the image).
# ``noinit_itable``: the kernel does not zero the unused inode tables in
# the background, which would write to every sandbox's image for nothing.
_MOUNTS_SCRIPT = (
    '"$1" -n -t ext4 -o loop,nosuid,nodev,noatime,noinit_itable "$2" "$3" && '
    'if [ -n "$4" ]; then cd "$4" && '
    # Named relative to it: the sandbox's mount table shows no host path.
    '"$1" -n -t overlay -o "lowerdir=.,upperdir=$3/upper,workdir=$3/work" '
    'runtools-root "$3/root"; fi && cd / && shift 4 && exec "$@"'
)
ROOT_LAYER = "root"
WORKSPACE_LAYER = "workspace"
HOME_LAYER = "home"
#: The directories a new disk holds, and their modes: ``/workspace``, the
#: home directory, and an imported template's writable layer and root.
DISK_DIRS = {
    WORKSPACE_LAYER: 0o755,
    HOME_LAYER: 0o700,
    "upper": 0o755,
    "work": 0o700,
    ROOT_LAYER: 0o700,
}
# Where the disk is mounted in that namespace: a directory every host has,
# hidden there by the mount; its name shows in the sandbox's own process list.
LAYER_MOUNT = "/run"
#: The sandbox's disk, a sparse file in its state directory.
DISK_IMAGE = "disk.img"


def layer_directory(fallback: str) -> str:
    """``/run``, or the sandbox's own (empty) state directory on a host without one."""
    return LAYER_MOUNT if os.path.isdir(LAYER_MOUNT) else fallback


def mkfs_argv(mkfs: str, image: str, contents: str) -> list[str]:
    """Make the (sparse, already sized) ``image`` an ext4 filesystem holding ``contents``.

    ``contents`` is a directory with ``DISK_DIRS``. No journal: the
    filesystem never outlives its sandbox's mount namespace, so there is
    nothing to recover after a crash, and a journal would cost disk and
    writes. No blocks reserved for root: every byte is the sandbox's.
    ``nodiscard``: the file is sparse already.
    """
    return [
        *(mkfs, "-q", "-F", "-m", "0", "-O", "^has_journal"),
        *("-E", "nodiscard,root_owner=0:0", "-d", contents, image),
    ]


def sandbox_mounts_argv(
    *, unshare: str, mount: str, image: str, template: Template, layer: str
) -> list[str]:
    """The prefix that mounts the sandbox's disk (and its template root) on ``layer``.

    ``layer`` is a host directory (``layer_directory``); only the new mount
    namespace sees anything mounted on it. The bwrap command line that
    follows binds its ``workspace`` and ``home`` directories, and for an
    imported template ``root`` as ``/`` (``bwrap_argv``).
    """
    lower = "" if template.root is None else str(template.root)
    if any(c in lower or c in layer for c in ",:\\\n"):
        raise SandboxUnavailable("template and state paths must not hold ',', ':' or '\\'")
    return [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        _MOUNTS_SCRIPT,
        "sh",
        mount,
        image,
        layer,
        lower,
    ]


def in_memory(path: str) -> bool:
    """Whether a sandbox path is in ``/tmp``, the one writable directory held in memory."""
    return path == TMP or path.startswith(TMP + "/")


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
    seccomp_fd: int | None,
    command: Sequence[str] | None = None,
    layer: str | None = None,
    own_root: bool = False,
) -> list[str]:
    """The bubblewrap command line for a sandbox (without the cgroup wrapper).

    ``etc_fds`` maps generated file paths to readable fds holding their
    content; ``info_fd`` receives bwrap's JSON with the host pid of the
    sandbox's PID 1; ``seccomp_fd`` holds the BPF filter the sandbox's
    processes run under (``seccomp``). ``command`` replaces the init program
    (for probes). ``layer`` is where ``sandbox_mounts_argv`` mounted the
    sandbox's disk: its ``workspace`` and ``home`` are ``/workspace`` and
    ``/home/user``, and with ``own_root`` (an imported template) its
    ``root`` is ``/``; without ``own_root`` the host's userland is. Without
    ``layer`` (probes, the benchmark's floor) those directories are tmpfs.
    """
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
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--setenv",
        "PATH",
        PATH,
        *(["--bind", f"{layer}/{ROOT_LAYER}", "/"] if layer and own_root else _host_system_args()),
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
    ]
    if layer is None:
        args += [
            *("--size", disk, "--perms", "0755", "--tmpfs", WORKSPACE),
            *("--size", disk, "--perms", "0700", "--tmpfs", HOME),
        ]
    else:
        # On the sandbox's disk: mounted in its mount namespace only (and
        # gone with it), written to a file on the host's disk, not memory.
        args += [
            *("--bind", f"{layer}/{WORKSPACE_LAYER}", WORKSPACE),
            *("--bind", f"{layer}/{HOME_LAYER}", HOME),
        ]
    args += [
        # Private and size-limited, in memory: its pages count against the
        # sandbox's memory limit.
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
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return [*args, "--", *(command if command is not None else init_argv())]
