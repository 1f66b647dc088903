"""The system-call filter every sandboxed process runs under.

Modelled on the default profiles of container runtimes (Docker's, Podman's):
everything is allowed except calls that reach kernel surface no sandboxed
program needs, each refused with ``EPERM`` so a program sees a plain error
rather than dying:

- kernel keyrings (``add_key``, ``request_key``, ``keyctl``): they belong
  to a uid, not to the sandbox, and would carry secrets to the uid's next
  holder;
- new user namespaces (``unshare`` or ``clone`` with ``CLONE_NEWUSER``);
  ``clone3``, whose flags a filter cannot read, answers ``ENOSYS`` so the C
  library falls back to ``clone``. (``setns`` stays: ``nsenter`` needs it
  under the filter, and without capabilities it enters only namespaces of
  a user namespace one created, which the filter prevents);
- mounting (``mount``, ``umount2``, ``pivot_root``, the new mount API);
- ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``;
- kernel modules and ``kexec``; ``reboot``, ``swapon``/``swapoff``, ``acct``,
  quotas, ``syslog``, raw I/O ports, handle-based opens;
- setting the clock (``clock_settime``, ``settimeofday``, ``adjtimex``, ...);
- tracing or reading other processes: ``ptrace`` attach and seize (a
  debugger may still start and trace its own child, ``PTRACE_TRACEME``),
  ``process_vm_readv``/``writev``, ``kcmp``, ``pidfd_getfd``;
- ``personality`` flags that weaken address-space randomisation or make
  data executable (``setarch -R``); querying the personality still works.

System calls of another ABI than the host's (32-bit ``int 0x80`` on x86-64,
x32) kill the process: the filter only reads the host's numbers.

The filter is built once with libseccomp (through ``pyseccomp``) and
exported as a BPF program. bubblewrap installs it on the sandbox's init
(``--seccomp FD``); commands get it from ``install`` in the forked child,
before ``nsenter`` joins the sandbox, so every process of a command and
everything it starts runs under it (filters are inherited and cannot be
removed).

Not here: privileges and namespaces (``enter``, ``layout``).
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass, field

from runtools.server.domain.errors import SandboxUnavailable

__all__ = ["DENIED_SYSCALLS", "SeccompFilter", "build_filter"]

DENIED_SYSCALLS = (
    # kernel keyrings
    "add_key",
    "request_key",
    "keyctl",
    # mounting
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    # kernel surface
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "lookup_dcookie",
    "open_by_handle_at",
    # the kernel itself
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "nfsservctl",
    "syslog",
    "iopl",
    "ioperm",
    "vhangup",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
    # the clock
    "clock_settime",
    "clock_adjtime",
    "settimeofday",
    "adjtimex",
    "stime",
    # other processes
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
)

CLONE_NEWUSER = 0x10000000
PTRACE_ATTACH = 16
PTRACE_SEIZE = 0x4206
# personality(2) flags that weaken the address space; 0xffffffff only queries.
WEAKENING_PERSONALITY = (
    0x0040000,  # ADDR_NO_RANDOMIZE
    0x0100000,  # MMAP_PAGE_ZERO
    0x0200000,  # ADDR_COMPAT_LAYOUT
    0x0400000,  # READ_IMPLIES_EXEC
    0x0800000,  # ADDR_LIMIT_32BIT
    0x8000000,  # ADDR_LIMIT_3GB
)
PERSONALITY_QUERY = 0xFFFFFFFF
_TOP_BIT = 0x80000000

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@dataclass
class SeccompFilter:
    """A BPF program, ready to hand to bubblewrap or to install before ``exec``."""

    bpf: bytes
    _program: ctypes.Array[ctypes.c_char] = field(init=False, repr=False)
    _fprog: _SockFprog = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Built now, in the parent: the forked child must only make one call.
        self._program = ctypes.create_string_buffer(self.bpf, len(self.bpf))
        self._fprog = _SockFprog(len(self.bpf) // 8, ctypes.addressof(self._program))
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl

    def memfd(self) -> int:
        """A readable fd holding the program (bubblewrap's ``--seccomp FD``)."""
        fd = os.memfd_create("seccomp", 0)
        os.write(fd, self.bpf)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def install(self) -> None:
        """Install on the calling (forked, single-threaded) process; ``preexec_fn``.

        Root installs without ``no_new_privs`` (it has ``CAP_SYS_ADMIN``), so
        ``nsenter`` and ``setpriv`` still run; the command sets it later.
        """
        if self._prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self._fprog), 0, 0):
            raise OSError(ctypes.get_errno(), "cannot install the sandbox's seccomp filter")


def build_filter() -> SeccompFilter:
    """The sandbox profile as BPF; ``SandboxUnavailable`` if libseccomp is missing."""
    try:
        import pyseccomp as sc  # here: importing it loads the libseccomp library
    except (ImportError, RuntimeError) as exc:
        raise SandboxUnavailable(
            "libseccomp is not installed (Debian: libseccomp2; Python: pyseccomp)"
        ) from exc
    eperm = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(sc.ALLOW)
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    for name in DENIED_SYSCALLS:
        if sc.resolve_syscall(sc.Arch.NATIVE, name) == -1:
            continue  # unknown to this libseccomp: not a call this kernel has
        flt.add_rule(eperm, name)
    for name in ("unshare", "clone"):  # flags are the first argument
        flt.add_rule(eperm, name, sc.Arg(0, sc.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (PTRACE_ATTACH, PTRACE_SEIZE):
        flt.add_rule(eperm, "ptrace", sc.Arg(0, sc.EQ, request))
    # A weakening flag without the top bit; with the top bit, anything but the query.
    for flag in WEAKENING_PERSONALITY:
        flt.add_rule(eperm, "personality", sc.Arg(0, sc.MASKED_EQ, flag | _TOP_BIT, flag))
    for bit in range(31):
        mask = _TOP_BIT | (1 << bit)
        flt.add_rule(eperm, "personality", sc.Arg(0, sc.MASKED_EQ, mask, _TOP_BIT))
    fd = os.memfd_create("seccomp-export", 0)
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            flt.export_bpf(out)
        size = os.lseek(fd, 0, os.SEEK_END)
        bpf = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    return SeccompFilter(bpf)
