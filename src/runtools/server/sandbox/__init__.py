"""Sandboxes: isolated, resource-limited environments that run untrusted commands.

The sandbox services depend on :class:`SandboxDriver` only (``driver``);
:class:`LocalSandboxDriver` (``local``) implements it on one Linux host. It
must run as root and needs bubblewrap (``bwrap``), util-linux (``nsenter``,
``setpriv``), coreutils and cgroups (v2, or v1 with the memory, pids, cpu
and freezer controllers). It never falls back to running anything
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
sandbox user can neither signal nor trace them.

A command enters a running sandbox through ``nsenter`` using namespace fds
opened from the verified ``/proc/<pid>`` of the sandbox's PID 1 (pid reuse
cannot redirect it), then ``setpriv`` drops privileges and ``env -i``
applies the environment: ``PATH``, ``HOME``, ``LANG``, then the sandbox's
env, then the command's. Nothing of the service's environment is passed.
Each command gets a new session; no terminal is shared.

Filesystem
----------
Read-only from the host: ``/usr``, ``/bin``, ``/sbin``, ``/lib*`` and an
allowlist of non-secret ``/etc`` entries (linker cache, alternatives, CA
certificates, time zone, MIME types, Python config). ``/etc/passwd``,
``group``, ``hosts``, ``hostname`` and ``nsswitch.conf`` are generated.
Private and writable: ``/workspace`` (the default cwd), ``/tmp`` and
``/home/user``, each a tmpfs limited to the sandbox's disk size. Own
``/proc``, minimal ``/dev``, no ``/sys``. Nothing else of the host exists
inside: not the driver's state directory, not other sandboxes, not
``/root`` or any other host directory. The tmpfs mounts live only in the
sandbox's mount namespace, so there is no host-side mount to leak; tmpfs
pages are charged to the sandbox's memory cgroup, which means the disk
size is also bounded by the memory limit. Uploaded files are charged the
same way: a helper in the sandbox's cgroups writes them
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
bubblewrap runs with ``--die-with-parent``: if the service dies, the
sandbox's PID 1 is killed and the kernel kills its whole PID namespace,
which also frees its tmpfs mounts. (A paused sandbox dies once thawed.)
State under the driver's root records each sandbox (uid, PID 1 identity,
cgroup paths). After a restart, ``reap_orphans(known_ids)`` kills and
removes the cgroups and state of every sandbox not in ``known_ids`` and
returns their ids. Sandboxes in ``known_ids`` are left alone; because
their processes died with the previous service, ``is_alive`` reports
False for them: the caller should mark them failed and call ``destroy``
to release their cgroups, state and uid.

Modules
-------
``driver`` the interface and its values; ``local`` the driver that ties the
rest together; ``layout`` what a sandbox sees; ``enter`` how a command gets
in; ``process`` and ``output`` following a command and its output;
``identity`` pids safe from reuse; ``filesystem`` confined file access;
``charged_write`` uploads the sandbox pays for; ``oom`` whom the OOM killer
takes; ``state`` the on-disk record; ``cgroups`` limits, freezing, killing.

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
