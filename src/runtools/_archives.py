"""Local folders as tar streams: packed for an upload, unpacked from a download.

``pack_directory`` yields a gzip-compressed tar of a folder while it is
being read (a worker thread writes the archive, the caller's iteration
takes it piece by piece), so a large folder is never held in memory; the
progress callback is told of each file byte read. Symlinks are stored as
links, never followed; sockets and the like are left out.

``unpack_stream`` extracts a downloaded tar into a local directory with the
standard library's ``data`` filter: nothing outside it is written, whatever
the archive says.

Not here: HTTP (the resources send and receive the streams).
"""

from __future__ import annotations

import io
import os
import queue
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["directory_bytes", "pack_directory", "unpack_stream"]

CHUNK = 256 * 1024
_QUEUE_DEPTH = 16
_PUT_TIMEOUT_S = 0.5

Progress = Callable[[int], None]


def directory_bytes(root: Path) -> int:
    """Bytes of the regular files under ``root`` (links not followed): the progress total."""
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not os.path.islink(path):
                total += info.st_size
    return total


class _Sink(io.RawIOBase):
    """Where the tar is written: handed on in pieces, stopped when the reader is gone."""

    def __init__(self, pieces: queue.Queue[bytes | BaseException | None]) -> None:
        self._pieces = pieces
        self._buffer = bytearray()
        self.stopped = threading.Event()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self.hand_on()
        return len(data)

    def hand_on(self) -> None:
        if self._buffer:
            self.put(bytes(self._buffer))
            self._buffer.clear()

    def put(self, item: bytes | BaseException | None) -> None:
        while not self.stopped.is_set():
            try:
                self._pieces.put(item, timeout=_PUT_TIMEOUT_S)
                return
            except queue.Full:
                continue
        raise _Stopped


class _Stopped(Exception):
    """The consumer went away; the packing thread ends quietly."""


class _Counted(io.RawIOBase):
    def __init__(self, raw: IO[bytes], on_read: Progress | None) -> None:
        self._raw = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data and self._on_read is not None:
            self._on_read(len(data))
        return data


def _add_tree(archive: tarfile.TarFile, root: Path, on_read: Progress | None) -> None:
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            arcname = os.path.relpath(path, root)
            info = archive.gettarinfo(path, arcname)
            if info is None:  # a socket
                continue
            if info.isreg():
                with open(path, "rb") as content:
                    archive.addfile(info, _Counted(content, on_read))
            else:
                archive.addfile(info)


def pack_directory(root: Path, *, on_read: Progress | None = None) -> Iterator[bytes]:
    """A tar.gz of the folder ``root``'s content, names relative to it, in pieces."""
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(_QUEUE_DEPTH)
    sink = _Sink(pieces)

    def produce() -> None:
        try:
            with tarfile.open(fileobj=sink, mode="w|gz") as archive:
                _add_tree(archive, root, on_read)
            sink.hand_on()
            sink.put(None)
        except _Stopped:
            return
        except BaseException as exc:
            try:
                sink.put(exc)
            except _Stopped:
                return

    worker = threading.Thread(target=produce, name="runtools-pack", daemon=True)
    worker.start()
    try:
        while True:
            item = pieces.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        sink.stopped.set()
        worker.join(timeout=5)


class _StreamReader(io.RawIOBase):
    """A file object over an iterator of byte strings."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def unpack_stream(chunks: Iterable[bytes], destination: Path) -> int:
    """Extract a tar stream into ``destination`` (created); returns the files written."""
    destination.mkdir(parents=True, exist_ok=True)
    files = 0

    def accept(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        nonlocal files
        kept = tarfile.data_filter(member, path)
        if kept is not None and kept.isfile():
            files += 1
        return kept

    reader = io.BufferedReader(_StreamReader(chunks), CHUNK)
    with tarfile.open(fileobj=reader, mode="r|*") as archive:
        archive.extractall(destination, filter=accept)  # noqa: S202 - the data filter
    return files
