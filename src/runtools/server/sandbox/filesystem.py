"""File access confined to a sandbox's writable directories.

Operations run in the service (as root) against a directory fd of the
sandbox's root, so the kernel would happily follow ``..`` or an absolute
symlink out to the host. Therefore the kernel never resolves a path here:
every component is opened with ``O_NOFOLLOW`` relative to the previous fd,
``..`` is resolved lexically, and symlinks are read and re-resolved by this
code from the sandbox root. A path (after following links) must stay below
one of the allowed roots, else ``SandboxPathRejected``. Swapping components
for symlinks concurrently cannot escape: an fd, once open, is a real
directory inside the sandbox.

Not here: writing an upload's bytes (``charged_write``: the sandbox pays for
them), finding the sandbox's root (the driver hands it in).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

from runtools.server.domain.errors import (
    SandboxError,
    SandboxFileTooLarge,
    SandboxNotFound,
    SandboxPathRejected,
)
from runtools.server.sandbox.driver import DEFAULT_CWD, FileEntry, FileType

__all__ = ["ConfinedFiles", "PendingWrite", "normalize", "translate_os_error"]

MAX_SYMLINK_HOPS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
T = TypeVar("T")


def normalize(path: str, roots: tuple[str, ...], base: str = DEFAULT_CWD) -> str:
    """Absolute, lexically normalised form of ``path``; rejected unless below ``roots``."""
    if "\0" in path:
        raise SandboxPathRejected("path contains a NUL byte")
    full = path if path.startswith("/") else f"{base}/{path}"
    parts: list[str] = []
    for part in full.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise SandboxPathRejected(f"path escapes the sandbox: {path}")
            parts.pop()
        else:
            parts.append(part)
    result = "/" + "/".join(parts)
    if not any(result == r or result.startswith(r + "/") for r in roots):
        raise SandboxPathRejected(
            f"path is outside the sandbox's files ({', '.join(roots)}): {path}"
        )
    return result


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _refuse_directory_form(path: str) -> None:
    """A file path names a file: ``a.txt/`` (or ``a.txt/.``) is refused, not read as ``a.txt``."""
    if path.endswith(("/", "/.")):
        raise SandboxPathRejected(f"a file path cannot end with '/' or '/.': {path}")


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def translate_os_error(exc: OSError, path: str) -> Exception:
    """The sandbox error a failed file operation on ``path`` is to its caller."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return SandboxNotFound(f"no such file or directory: {path}")
    if exc.errno == errno.EISDIR:
        return SandboxPathRejected(f"is a directory: {path}")
    if exc.errno in (errno.ENXIO, errno.ENODEV):
        return SandboxPathRejected(f"not a regular file: {path}")
    if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL):
        return SandboxPathRejected(f"invalid path ({exc.strerror}): {path}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SandboxFileTooLarge(f"no space left in the sandbox for {path}")
    return SandboxError(f"file operation failed for {path}: {exc.strerror}")


class PendingWrite:
    """A temporary file being filled; ``commit`` renames it over the name, ``abort`` drops it.

    Holds its own descriptor of the (confined) directory, so nothing is
    resolved by path again. Exactly one of ``commit`` or ``abort`` is called.
    """

    def __init__(self, dir_fd: int, temporary: str, name: str, path: str, fd: int) -> None:
        self.dir_fd = dir_fd
        self.temporary = temporary
        self.name = name
        self.path = path
        #: The temporary file, open for writing.
        self.fd = fd

    @contextlib.contextmanager
    def filling(self) -> Iterator[int]:
        """The file to fill; if filling fails, the temporary file goes (OS errors translated)."""
        try:
            yield self.fd
        except OSError as exc:
            self.abort()
            raise translate_os_error(exc, self.path) from exc
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        try:
            os.close(self.fd)
            self.fd = -1
            os.rename(self.temporary, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError as exc:
            self.abort()
            raise translate_os_error(exc, self.path) from exc
        os.close(self.dir_fd)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            if self.fd >= 0:
                os.close(self.fd)
        self.fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self.temporary, dir_fd=self.dir_fd)
        with contextlib.suppress(OSError):
            os.close(self.dir_fd)


class _Restart(Exception):
    """A symlink was met; resolution starts again from the root with this path."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class ConfinedFiles:
    """Path-safe file operations below ``roots`` of the tree at ``root_fd``.

    ``root_fd`` stays owned by the caller. Files and directories created
    here are given to ``uid``/``gid`` so the sandbox user owns them.
    """

    def __init__(
        self,
        root_fd: int,
        *,
        roots: tuple[str, ...],
        uid: int,
        gid: int,
        max_file_bytes: int,
        max_list_entries: int,
    ) -> None:
        self._root_fd = root_fd
        self._roots = roots
        self._uid = uid
        self._gid = gid
        self.max_file_bytes = max_file_bytes
        self.max_list_entries = max_list_entries

    # -- resolution --------------------------------------------------------

    def _follow(self, link_dir: str, name: str, dir_fd: int, rest: list[str], hops: int) -> str:
        if hops >= MAX_SYMLINK_HOPS:
            raise SandboxPathRejected(f"too many levels of symbolic links: {link_dir}/{name}")
        target = os.readlink(name, dir_fd=dir_fd)
        joined = target if target.startswith("/") else f"{link_dir}/{target}"
        return normalize("/".join([joined, *rest]), self._roots)

    def _resolve(
        self,
        path: str,
        final: Callable[[int, str, str], T],
        *,
        create_dirs: bool = False,
    ) -> T:
        """Walk to the parent of ``path`` and call ``final(parent_fd, name, full_path)``.

        ``final`` raises ``_Restart`` when the last component is a symlink
        it should follow.
        """
        current = normalize(path, self._roots)
        for hops in range(MAX_SYMLINK_HOPS + 1):
            try:
                return self._walk(current, final, hops, create_dirs)
            except _Restart as restart:
                current = restart.path
        raise SandboxPathRejected(f"too many levels of symbolic links: {path}")

    def _walk(
        self, path: str, final: Callable[[int, str, str], T], hops: int, create_dirs: bool
    ) -> T:
        parts = path.strip("/").split("/")
        fd = os.dup(self._root_fd)
        walked = ""
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink(part, fd):
                        raise _Restart(
                            self._follow(walked or "/", part, fd, parts[i + 1 :], hops)
                        ) from None
                    if exc.errno == errno.ENOENT and create_dirs and walked:
                        next_fd = self._mkdir(part, fd)
                    else:
                        raise translate_os_error(exc, path) from exc
                os.close(fd)
                fd = next_fd
                walked = f"{walked}/{part}"
            return final(fd, parts[-1], path)
        finally:
            os.close(fd)

    def _mkdir(self, name: str, dir_fd: int) -> int:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        os.fchown(fd, self._uid, self._gid)
        return fd

    def _open_final(self, dir_fd: int, name: str, path: str, flags: int, mode: int = 0o644) -> int:
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        except OSError as exc:
            # O_NOFOLLOW on a link fails with ELOOP, or ENOTDIR with O_DIRECTORY.
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink(name, dir_fd):
                link_dir = path.rsplit("/", 1)[0] or "/"
                raise _Restart(self._follow(link_dir, name, dir_fd, [], 0)) from None
            raise translate_os_error(exc, path) from exc

    # -- operations --------------------------------------------------------

    def read(self, path: str) -> bytes:
        _refuse_directory_form(path)

        def final(dir_fd: int, name: str, full: str) -> bytes:
            # O_NONBLOCK: opening a FIFO must not hang the service.
            fd = self._open_final(dir_fd, name, full, os.O_RDONLY | os.O_NONBLOCK)
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode):
                    raise SandboxPathRejected(f"is a directory: {full}")
                if not stat.S_ISREG(info.st_mode):
                    raise SandboxPathRejected(f"not a regular file: {full}")
                if info.st_size > self.max_file_bytes:
                    raise SandboxFileTooLarge(f"{full} is larger than {self.max_file_bytes} bytes")
                os.set_blocking(fd, True)
                chunks, total = [], 0
                while chunk := os.read(fd, 1024 * 1024):
                    total += len(chunk)
                    if total > self.max_file_bytes:  # grew while we read
                        raise SandboxFileTooLarge(
                            f"{full} is larger than {self.max_file_bytes} bytes"
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
            finally:
                os.close(fd)

        return self._guard(path, lambda: self._resolve(path, final))

    def write(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` with ``data``, written by this process."""
        pending = self.prepare_write(path, len(data))
        with pending.filling() as fd:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        pending.commit()

    def prepare_write(self, path: str, size: int) -> PendingWrite:
        """An empty temporary file beside ``path``, to fill and then ``commit`` over it.

        The new content goes to a temporary file renamed over the name, so a
        write that fails (no space, no memory) leaves any old file whole. It
        takes the old file's mode. Whoever fills it need not be this process:
        the driver has a process in the sandbox's cgroup write the bytes.
        """
        _refuse_directory_form(path)
        if size > self.max_file_bytes:
            raise SandboxFileTooLarge(f"file is larger than {self.max_file_bytes} bytes")

        def final(dir_fd: int, name: str, full: str) -> PendingWrite:
            if full in self._roots:
                raise SandboxPathRejected(f"is a directory: {full}")
            # An existing name is opened first (links resolved by us, a FIFO or
            # device refused) only to learn its mode.
            mode = 0o644
            try:
                existing = self._open_final(dir_fd, name, full, os.O_RDONLY | os.O_NONBLOCK)
            except SandboxNotFound:
                pass  # a new file
            else:
                try:
                    info = os.fstat(existing)
                finally:
                    os.close(existing)
                if stat.S_ISDIR(info.st_mode):
                    raise SandboxPathRejected(f"is a directory: {full}")
                if not stat.S_ISREG(info.st_mode):
                    raise SandboxPathRejected(f"not a regular file: {full}")
                mode = stat.S_IMODE(info.st_mode)
            return self._temporary(dir_fd, name, full, mode)

        return self._guard(path, lambda: self._resolve(path, final, create_dirs=True))

    def _temporary(self, dir_fd: int, name: str, path: str, mode: int) -> PendingWrite:
        temporary = f".upload-{secrets.token_hex(8)}"  # short: any valid name fits beside it
        fd = os.open(
            temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
        pending = PendingWrite(os.dup(dir_fd), temporary, name, path, fd)
        try:
            os.fchown(fd, self._uid, self._gid)
            os.fchmod(fd, mode)
        except BaseException:
            pending.abort()
            raise
        return pending

    def directory(self, path: str) -> str:
        """The absolute path of the existing directory ``path`` (links followed, confined)."""

        def final(dir_fd: int, name: str, full: str) -> str:
            try:
                fd = self._open_final(dir_fd, name, full, os.O_RDONLY | os.O_DIRECTORY)
            except SandboxNotFound:
                if _exists(name, dir_fd):
                    raise SandboxPathRejected(f"not a directory: {full}") from None
                raise
            os.close(fd)
            return full

        return self._guard(path, lambda: self._resolve(path, final))

    def listdir(self, path: str) -> list[FileEntry]:
        def final(dir_fd: int, name: str, full: str) -> list[FileEntry]:
            try:
                fd = self._open_final(dir_fd, name, full, os.O_RDONLY | os.O_DIRECTORY)
            except SandboxNotFound:
                if _exists(name, dir_fd):  # there, but not a directory (links are followed)
                    raise SandboxPathRejected(f"not a directory: {full}") from None
                raise
            try:
                return self._entries(fd, full)
            finally:
                os.close(fd)

        return self._guard(path, lambda: self._resolve(path, final))

    def _entries(self, fd: int, directory: str) -> list[FileEntry]:
        entries: list[FileEntry] = []
        with os.scandir(fd) as it:
            for entry in it:
                if len(entries) >= self.max_list_entries:
                    raise SandboxFileTooLarge(
                        f"{directory} has more than {self.max_list_entries} entries"
                    )
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listing
                entries.append(
                    FileEntry(
                        name=entry.name,
                        path=f"{directory.rstrip('/')}/{entry.name}",
                        type=_file_type(info.st_mode),
                        size=info.st_size,
                        modifiedAt=datetime.fromtimestamp(info.st_mtime, tz=UTC),
                    )
                )
        return sorted(entries, key=lambda e: e.name)

    @staticmethod
    def _guard(path: str, op: Callable[[], T]) -> T:
        try:
            return op()
        except SandboxError:
            raise
        except OSError as exc:
            raise translate_os_error(exc, path) from exc


def _file_type(mode: int) -> FileType:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"
