"""Sandboxes: isolated, resource-limited environments that run untrusted commands.

The sandbox services depend on :class:`SandboxDriver` only (``driver``);
:class:`LocalSandboxDriver` (``local``) implements it on one Linux host. It
must run as root and needs bubblewrap (``bwrap``), util-linux (``nsenter``,
``setpriv``, ``unshare``, ``mount``), keyutils (``keyctl``), e2fsprogs
(``mkfs.ext4``), loop devices, libseccomp, coreutils and cgroups (v2,
or v1 with the memory, pids, cpu and freezer controllers). It never falls
back to running anything
unisolated: ``check_available`` raises ``SandboxUnavailable`` naming what
is missing.

Isolation
---------
A sandbox is a bubblewrap process tree with its own mount, PID, IPC, UTS,
cgroup and network namespaces (the network namespace has only a loopback
interface: no route to the host's services or the outside). Its PID 1 is
bubblewrap's reaper; the sandbox's init (``sleep infinity``) keeps the
namespaces alive, so background processes survive between commands.
No user namespace is used: namespaces belong to the host's root, and every
command runs as a host uid reserved for that sandbox (one per sandbox),
with no supplementary groups, an empty capability bounding set and
``no_new_privs`` (setuid binaries do not elevate). Infrastructure
processes (PID 1 and init) run as root without capabilities, so the
sandbox user can neither signal nor trace them. Uids are handed out in
turn, and one is handed out again only when nothing of its previous holder
is left on the host; destroy invalidates its kernel keyrings, which
outlive every namespace (``residue``). Every process of a sandbox, its
PID 1 and init as much as each command and whatever it starts, runs under
a seccomp filter modelled on the container runtimes' default profile
(``seccomp``): keyrings, new user namespaces, mounting, ``bpf``,
``perf_event_open``, kernel modules, clock setting, ``ptrace`` attach and
the like answer ``EPERM``.

A command enters a running sandbox through ``nsenter`` using namespace fds
opened from the verified ``/proc/<pid>`` of the sandbox's PID 1 (pid reuse
cannot redirect it), then ``setpriv`` drops privileges and ``env -i``
applies the environment: ``PATH``, ``HOME``, ``LANG``, then the sandbox's
env, then the command's. Nothing of the service's environment is passed.
Each command gets a new session; no terminal is shared.

Filesystem
----------
A sandbox's ``/`` is its template (``templates``). The host's (the
default): read-only from the host, ``/usr``, ``/bin``, ``/sbin``,
``/lib*`` and an allowlist of non-secret ``/etc`` entries (linker cache,
alternatives, CA certificates, time zone, MIME types, Python config). An
imported one: an overlay of the template's directory (never written) and a
writable layer on the sandbox's disk. ``/etc/passwd``, ``group``,
``hosts``, ``hostname`` and ``nsswitch.conf`` are generated. Private and
writable: ``/workspace`` (the default cwd) and ``/home/user`` on the
sandbox's disk, and ``/tmp``, a tmpfs of the disk's size. Own ``/proc``,
minimal ``/dev``, no ``/sys``. Nothing else of the host exists inside: not
the driver's state directory, not other sandboxes, not ``/root`` or any
other host directory.

A sandbox's disk is a sparse ext4 image of its disk size in its state
directory (a copy of a blank one per size, made once with e2fsprogs'
``mkfs.ext4``), loop-mounted together with the
template's overlay by a host-side ``unshare`` in a mount namespace of the
sandbox's own before bubblewrap starts: nothing is mounted where the host
sees it, the mounts vanish with the sandbox's last process and the loop
device with them (it clears itself once unmounted); destroy deletes the
image. The filesystem enforces the size; its page cache is charged to the
sandbox's memory cgroup and reclaimed, while ``/tmp``'s pages stay memory
for as long as its files exist. Because the image lives in the state
directory and the mount in the sandbox's namespace, files survive pause and
a restart of the service. Uploaded files are charged to the
sandbox: a helper in the sandbox's cgroups writes them
(``charged_write``). Commands are the OOM killer's choice before the
sandbox's own processes (``oom``).

The file API reaches those directories through the root of the sandbox's
PID 1 and resolves every path component itself (``O_NOFOLLOW``, lexical
``..``, symlinks re-resolved from the sandbox root): anything outside
``/workspace``, ``/tmp`` and ``/home/user`` is ``SandboxPathRejected``.

Limits
------
cgroups are created beneath the service's own cgroup, never at a
hierarchy root: ``<own>/runtools-sandboxes/<driver key>/<id>``, with
memory (swap disabled), pids and CPU quota (``vcpus`` x 100 ms per 100 ms).
Every command gets its own child cgroup; a timeout freezes and SIGKILLs
everything in it, including ``setsid``/double-forked descendants, while
background processes of commands that ended normally are left running.
Output is capped per stream (excess is read and discarded); pipes kept
open by background processes are drained by one service thread.
``pause`` freezes the whole sandbox (cgroup freezer); commands are refused
while paused. On cgroup v2 the service must run in a delegated cgroup
whose processes live in a leaf, or controllers cannot be enabled.

Lifetime and restarts
---------------------
A sandbox outlives the process that started it: bubblewrap runs in a
session of its own and is not tied to its parent, so stopping or killing
the service (or one of its workers) leaves every sandbox running, or
frozen if paused. State under the driver's root records each sandbox (uid,
PID 1 identity, cgroup paths), so a later driver on the same root finds
them: ``is_alive`` holds only while the recorded PID 1 has the same pid,
the same start time and is in the sandbox's own cgroup (a pid alone may
have been reused). ``reap_orphans(known_ids)`` kills and removes the
cgroups and state of every sandbox not in ``known_ids`` and returns their
ids; those in ``known_ids`` are left alone. A sandbox whose processes died
meanwhile reports ``is_alive`` False: the caller marks it failed and calls
``destroy`` to release its cgroups, state and uid.

Modules
-------
``driver`` the interface and its values; ``local`` the driver that ties the
rest together; ``layout`` what a sandbox sees; ``enter`` how a command gets
in; ``process`` and ``output`` following a command and its output;
``templates`` the root filesystems sandboxes start from;
``identity`` pids safe from reuse; ``filesystem`` confined file access;
``charged_write`` uploads the sandbox pays for; ``archive`` (and its
``archive_worker``) many files at once, as tar streams; ``oom`` whom the
OOM killer takes; ``state`` the on-disk record; ``residue`` what a uid
leaves behind; ``seccomp`` the system calls a sandbox may not make;
``cgroups`` limits, freezing, killing.

Not here: records, quotas, who may use which sandbox (``services/sandboxes``),
HTTP, or the database: this layer knows sandboxes by id only. Failures are
raised as the domain's errors (``SandboxError`` and its kinds, or
``InvalidRequest`` for a spec or command it refuses).
"""

from runtools.server.sandbox.driver import (
    DEFAULT_CWD,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_TEMPLATE,
    DEFAULT_TIMEOUT_MS,
    ArchiveWritten,
    ExecChunk,
    ExecEvent,
    ExecExit,
    ExecResult,
    FileEntry,
    ResourceLimits,
    SandboxDriver,
    SandboxSpec,
)
from runtools.server.sandbox.local import LocalSandboxDriver

__all__ = [
    "DEFAULT_CWD",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_TEMPLATE",
    "DEFAULT_TIMEOUT_MS",
    "ArchiveWritten",
    "ExecChunk",
    "ExecEvent",
    "ExecExit",
    "ExecResult",
    "FileEntry",
    "LocalSandboxDriver",
    "ResourceLimits",
    "SandboxDriver",
    "SandboxSpec",
]
