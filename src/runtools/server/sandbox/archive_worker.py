"""The process that unpacks an uploaded tar into a sandbox, or packs a directory of it.

Run by the driver (``archive``) as a script of the service's own Python
interpreter, isolated (``-I -S``: standard library only), already in the
sandbox's cgroups and network, IPC and UTS namespaces. It imports what it
needs, then ``chroot``s into the sandbox's root (an fd opened from the
sandbox's verified PID 1) and becomes the sandbox user (no groups, no
capabilities) before it reads a byte of the archive. From then on it can do
exactly what a command of the sandbox user could: absolute symlinks resolve
inside the sandbox, the files it writes are the user's and are charged to
the sandbox like anything its commands write.

``unpack TARGET``: a tar stream (plain, gzip, bzip2 or xz) on stdin is
extracted with ``tarfile``'s ``data`` filter, after a stricter check of our
own: absolute names, ``..`` components, links pointing out of the target
and device files are refused rather than rewritten. Everything is
extracted into a fresh ``.upload-*`` directory beside the target first and
only moved into place once the whole archive was accepted, so a refused
archive leaves nothing behind. Replies one JSON line on stdout: the result,
or an error with a kind the driver maps onto its errors.

``pack TARGET``: writes a tar stream of the directory to stdout, names
relative to it; links are stored as links, never followed; sockets and
unreadable files are skipped (named on stderr, as is an error, last, as JSON).

``discard PATH``: removes a staging directory left by an ``unpack`` that was
killed.

Not here: choosing the cgroups and namespaces, feeding or reading the
stream (``archive``).
"""

from __future__ import annotations

import bz2  # noqa: F401 - loaded before chroot; tarfile imports it lazily
import errno
import grp  # noqa: F401 - idem
import gzip  # noqa: F401 - idem
import json
import lzma  # noqa: F401 - idem
import os
import pwd  # noqa: F401 - idem, for tarfile's owner names
import shutil
import signal
import stat
import sys
import tarfile
import tempfile
from typing import IO, Any, NoReturn

WRITABLE_ROOTS = ("/workspace", "/tmp", "/home/user")  # noqa: S108 - inside the sandbox
STAGING_PREFIX = ".upload-"
CHUNK = 1024 * 1024


class Refused(Exception):
    """The request cannot be honoured; ``kind`` says why to the driver."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


#: Where replies go: stdout, except while packing (stdout is then the archive).
_replies: list[IO[str]] = [sys.stdout]


def _reply(payload: dict[str, Any]) -> None:
    _replies[0].write(json.dumps(payload) + "\n")
    _replies[0].flush()


def _confined(path: str) -> bool:
    return any(path == r or path.startswith(r + "/") for r in WRITABLE_ROOTS)


def _enter(root_fd: int, uid: int, gid: int) -> None:
    """Become the sandbox user inside the sandbox's root; nothing of the host stays reachable."""
    os.fchdir(root_fd)
    os.chroot(".")
    os.chdir("/")
    os.close(root_fd)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:  # pragma: no cover - cannot happen
        raise SystemExit("cannot drop privileges")
    os.umask(0o022)


# -- unpack -------------------------------------------------------------------


def _existing_ancestor(target: str) -> tuple[str, list[str]]:
    """The deepest existing directory on the way to ``target`` and the names below it."""
    parts = [p for p in target.split("/") if p]
    for depth in range(len(parts), 0, -1):
        candidate = "/" + "/".join(parts[:depth])
        if not os.path.lexists(candidate):
            continue
        real = os.path.realpath(candidate)
        if not _confined(real):
            raise Refused("path_rejected", f"path is outside the sandbox's files: {target}")
        if not os.path.isdir(real):
            raise Refused("path_rejected", f"not a directory: {candidate}")
        return real, parts[depth:]
    raise Refused("path_rejected", f"path is outside the sandbox's files: {target}")


def _strict(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Refuse, rather than rewrite, what ``data`` would quietly fix; then apply ``data``."""
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise Refused("path_rejected", f"archive member has an absolute name: {name}")
    if ".." in name.replace("\\", "/").split("/"):
        raise Refused("path_rejected", f"archive member leaves the target directory: {name}")
    if member.isdev():
        raise Refused("path_rejected", f"archive member is a device or FIFO: {name}")
    if member.issym() and member.linkname.startswith("/"):
        raise Refused("path_rejected", f"archive member links to an absolute path: {name}")
    try:
        filtered = tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        raise Refused("path_rejected", f"archive member refused: {exc}") from exc
    if filtered is None:  # pragma: no cover - data_filter never skips
        raise Refused("path_rejected", f"archive member refused: {name}")
    return filtered


def _conflicts(src: str, dst: str, shown: str) -> None:
    """Raise if moving ``src``'s entries into ``dst`` would replace a directory by a file."""
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if not os.path.lexists(d):
            continue
        s_dir = stat.S_ISDIR(os.lstat(s).st_mode)
        d_dir = stat.S_ISDIR(os.lstat(d).st_mode)
        if s_dir and d_dir:
            _conflicts(s, d, f"{shown}/{name}")
        elif s_dir or d_dir:
            kind = "a directory" if d_dir else "not a directory"
            raise Refused("path_rejected", f"{shown}/{name} exists and is {kind}")


def _merge(src: str, dst: str) -> None:
    """Move ``src``'s entries into ``dst``: new names renamed in, files replaced, dirs merged."""
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if os.path.lexists(d) and stat.S_ISDIR(os.lstat(d).st_mode):
            mode = stat.S_IMODE(os.lstat(s).st_mode)
            os.chmod(s, mode | stat.S_IRWXU)  # its entries must be movable out of it
            _merge(s, d)
        else:
            os.rename(s, d)


def _discard(path: str) -> None:
    """Remove a staging tree, read-only directories of the archive included."""
    if not os.path.lexists(path):
        return
    if not os.path.islink(path):
        os.chmod(path, stat.S_IRWXU)
        for directory, subdirs, _ in os.walk(path):
            for name in subdirs:
                sub = os.path.join(directory, name)
                if not os.path.islink(sub):
                    os.chmod(sub, stat.S_IRWXU)  # before the walk lists it
    shutil.rmtree(path, ignore_errors=True)


def unpack(target: str, source: IO[bytes]) -> dict[str, Any]:
    ancestor, missing = _existing_ancestor(target)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=ancestor)
    _reply({"staging": staging})
    try:
        dest = os.path.join(staging, *missing)
        os.makedirs(dest, exist_ok=True)
        counted = {"files": 0, "size": 0}

        def accept(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
            checked = _strict(member, path)
            if checked.isfile():
                counted["files"] += 1
                counted["size"] += checked.size
            return checked

        try:
            with tarfile.open(fileobj=source, mode="r|*") as archive:
                # extractall, not extract: a read-only directory gets its mode last.
                archive.extractall(dest, filter=accept)  # noqa: S202 - every member checked
        except (tarfile.ReadError, tarfile.CompressionError, EOFError) as exc:
            raise Refused("invalid", f"not a readable tar archive: {exc}") from exc
        except tarfile.TarError as exc:
            raise Refused("invalid", f"the archive cannot be extracted: {exc}") from exc
        final = os.path.join(ancestor, *missing)
        if missing:
            top = os.path.join(staging, missing[0])
            os.rename(top, os.path.join(ancestor, missing[0]))
        else:
            _conflicts(dest, final, target)
            _merge(dest, final)
        return {"path": target, **counted}
    finally:
        _discard(staging)


# -- pack ---------------------------------------------------------------------


def pack(target: str, sink: IO[bytes]) -> None:
    real = os.path.realpath(target)
    if not _confined(real):
        raise Refused("path_rejected", f"path is outside the sandbox's files: {target}")
    if not os.path.isdir(real):
        raise Refused("path_rejected", f"not a directory: {target}")
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        _add_tree(archive, real, "")


def _add_tree(archive: tarfile.TarFile, directory: str, prefix: str) -> None:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        sys.stderr.write(f"skipped {prefix or '.'}: {exc.strerror}\n")
        return
    for name in names:
        path = os.path.join(directory, name)
        arcname = f"{prefix}{name}"
        try:
            info = archive.gettarinfo(path, arcname)
        except OSError as exc:
            sys.stderr.write(f"skipped {arcname}: {exc.strerror}\n")
            continue
        if info is None:  # a socket: nothing a tar can hold
            continue
        if info.isreg():
            try:
                with open(path, "rb") as content:
                    archive.addfile(info, content)
            except OSError as exc:
                sys.stderr.write(f"skipped {arcname}: {exc.strerror}\n")
            continue
        archive.addfile(info)
        if info.isdir():
            _add_tree(archive, path, f"{arcname}/")


# -- entry point --------------------------------------------------------------


def _fail(exc: BaseException) -> NoReturn:
    if isinstance(exc, Refused):
        _reply({"error": exc.kind, "message": exc.message})
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        _reply({"error": "no_space", "message": "no space left in the sandbox"})
    elif isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        _reply({"error": "os", "errno": exc.errno, "message": f"{exc.strerror or exc}{where}"})
    else:
        _reply({"error": "failed", "message": f"{type(exc).__name__}: {exc}"})
    raise SystemExit(1)


def _terminated(signum: int, _frame: Any) -> NoReturn:
    raise Refused("cancelled", "the transfer was cancelled")


def main(argv: list[str]) -> None:
    command, root_fd, uid, gid, target = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    _enter(root_fd, uid, gid)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        if command == "unpack":
            _reply(unpack(target, sys.stdin.buffer))
        elif command == "pack":
            _replies[0] = sys.stderr
            pack(target, sys.stdout.buffer)
        elif command == "discard":
            if os.path.basename(target).startswith(STAGING_PREFIX):
                _discard(target)
        else:
            raise Refused("failed", f"unknown command {command!r}")
    except BaseException as exc:
        _fail(exc)


if __name__ == "__main__":
    main(sys.argv[1:])
