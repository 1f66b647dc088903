"""An interactive process in a sandbox: stdin in, output out, on a terminal or on pipes.

What an SSH session runs. It enters the sandbox by the same chain as a
command (``enter``: cgroups first, namespaces, the sandbox uid, no
capabilities, the seccomp filter), in a cgroup leaf of its own, but unlike
a command it has no deadline and no output cap: output is handed on as it
is read, and the reader's pace is the process's (a full pipe stalls it).

With a terminal, the process gets the slave side of a pseudo-terminal as
stdin, stdout, stderr and controlling terminal (a new session, so job
control works); the service keeps the master. Without one, three pipes.

Not here: how the chain is built (``enter``), who may open a session
(the services).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import struct
import subprocess
import termios
from collections.abc import Awaitable, Callable, Mapping, Sequence

from runtools.server.sandbox.driver import StreamName, TerminalSize
from runtools.server.sandbox.output import READ_CHUNK
from runtools.server.sandbox.process import exit_code_of

__all__ = ["SessionProcess", "sandbox_pty", "start_session"]

# After the process exits, output still in a pipe is read for this long.
LINGER_S = 0.2
# <asm-generic/ioctls.h>; Python's termios has no names for them.
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
PTMX_DEVICE = os.makedev(5, 2)


def sandbox_pty(root_fd: int) -> tuple[int, int]:
    """A pseudo-terminal of the sandbox's own devpts (its ``/dev/pts``): master, slave.

    Allocated there, not on the host, so that inside the sandbox the
    terminal has a name (``tty``, ``ttyname``) and nothing of the host's
    terminals is in view. ``root_fd`` is the sandbox's root directory.
    """
    master = os.open(
        "dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=root_fd
    )
    try:
        info = os.fstat(master)
        if not stat.S_ISCHR(info.st_mode) or info.st_rdev != PTMX_DEVICE:
            raise OSError("the sandbox's /dev/pts/ptmx is not a pseudo-terminal multiplexer")
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, int(slave)


def _winsize(columns: int, rows: int) -> bytes:
    return struct.pack("HHHH", max(0, min(rows, 0xFFFF)), max(0, min(columns, 0xFFFF)), 0, 0)


class SessionProcess:
    """A running session: write its stdin, read its output, resize its terminal, end it."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        master: int | None,
        stdin: int | None,
        outputs: dict[StreamName, int],
        on_end: Callable[[], Awaitable[None]],
        kill: Callable[[], Awaitable[None]],
    ) -> None:
        self._proc = proc
        self._master = master
        self._stdin = stdin
        self._on_end = on_end
        self._kill = kill
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[StreamName, bytes] | None] = asyncio.Queue(maxsize=16)
        self._open: dict[StreamName, int] = dict(outputs)
        self._paused: set[StreamName] = set()
        self._exited = asyncio.Event()
        self._ended = False
        self._progress = 0
        self._closed = False
        self._pidfd = os.pidfd_open(proc.pid)
        self._loop.add_reader(self._pidfd, self._on_exit)
        for name, fd in self._open.items():
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._on_readable, name)
        self._closer = self._loop.create_task(self._close_when_done())

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def has_terminal(self) -> bool:
        return self._master is not None

    # -- output ----------------------------------------------------------------

    def _on_readable(self, name: StreamName) -> None:
        fd = self._open.get(name)
        if fd is None:
            return
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: a terminal whose every slave is closed
            data = b""
        if not data:
            self._close_output(name)
            return
        self._progress += 1
        self._queue.put_nowait((name, data))
        if self._queue.full():
            # Back-pressure: stop reading until the consumer catches up.
            for stream, open_fd in self._open.items():
                self._loop.remove_reader(open_fd)
                self._paused.add(stream)

    def _close_output(self, name: StreamName) -> None:
        fd = self._open.pop(name, None)
        if fd is None:
            return
        self._loop.remove_reader(fd)
        self._paused.discard(name)
        if fd != self._master:
            os.close(fd)
        if not self._open:
            self._queue_end()

    def _queue_end(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
            return
        # Full: the consumer drains first; the end follows once it has room.
        self._loop.call_later(0.01, self._queue_end)

    async def read(self) -> tuple[StreamName, bytes] | None:
        """The next output, in order; None once every output has ended."""
        if self._ended and self._queue.empty():
            return None
        item = await self._queue.get()
        for stream in list(self._paused):
            fd = self._open.get(stream)
            if fd is not None:
                self._loop.add_reader(fd, self._on_readable, stream)
            self._paused.discard(stream)
        if item is None:
            self._ended = True
        return item

    # -- input -----------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        fd = self._master if self._master is not None else self._stdin
        if fd is None or not data:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            except OSError:
                return  # the process is gone or closed its input
            view = view[written:]

    def close_stdin(self) -> None:
        """End of input: the pipe closes; on a terminal, an end-of-file character."""
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")
        elif self._stdin is not None:
            os.close(self._stdin)
            self._stdin = None

    def resize(self, columns: int, rows: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._master, termios.TIOCSWINSZ, _winsize(columns, rows))

    # -- the end ---------------------------------------------------------------

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        self._exited.set()

    async def wait(self) -> int:
        """The exit code (128+N when killed by signal N)."""
        await self._exited.wait()
        return exit_code_of(self._proc.wait())

    async def _close_when_done(self) -> None:
        await self._exited.wait()
        # A background process may hold the pipes (or the terminal) open: output
        # is read on while it keeps coming (or waits for a slow reader), and the
        # outputs end once nothing came for a moment.
        while self._open:
            seen = self._progress
            await asyncio.sleep(LINGER_S)
            if self._progress == seen and not self._paused:
                break
        for name in list(self._open):
            self._close_output(name)

    async def terminate(self) -> None:
        """Kill the session's processes (all of them, whatever they became)."""
        if not self._exited.is_set():
            await self._kill()

    async def close(self) -> None:
        """Kill what is left and free everything; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self.terminate()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._exited.wait(), 5.0)
        self._closer.cancel()
        for name in list(self._open):
            self._close_output(name)
        if not self._exited.is_set():
            self._loop.remove_reader(self._pidfd)
        for fd in (self._master, self._stdin, self._pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._stdin = None
        self._pidfd = -1
        await self._on_end()


def start_session(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    terminal: TerminalSize | None,
    preexec: Callable[[], None],
    on_end: Callable[[], Awaitable[None]],
    kill: Callable[[], Awaitable[None]],
    open_pty: Callable[[], tuple[int, int]] = os.openpty,
) -> SessionProcess:
    """Start ``argv`` in a new session, on a pseudo-terminal or on pipes.

    ``preexec`` runs in the forked child just before ``exec`` (after the new
    session and, with a terminal, after it became the controlling one).
    Raises ``OSError`` or ``subprocess.SubprocessError`` if it cannot start.
    """
    if terminal is not None:
        master, slave = open_pty()
        os.set_inheritable(master, False)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, _winsize(terminal.columns, terminal.rows))

        def child_setup() -> None:
            # Runs after setsid(): the terminal on fd 0 becomes the controlling one.
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            preexec()

        try:
            proc = subprocess.Popen(  # noqa: S603 - argv is built by the driver, no shell
                list(argv),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(env),
                close_fds=True,
                start_new_session=True,
                preexec_fn=child_setup,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return SessionProcess(
            proc, master=master, stdin=None, outputs={"stdout": master}, on_end=on_end, kill=kill
        )
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv is built by the driver, no shell
            list(argv),
            stdin=in_r,
            stdout=out_w,
            stderr=err_w,
            env=dict(env),
            close_fds=True,
            start_new_session=True,
            preexec_fn=preexec,
        )
    except BaseException:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    os.set_blocking(in_w, False)
    return SessionProcess(
        proc,
        master=None,
        stdin=in_w,
        outputs={"stdout": out_r, "stderr": err_r},
        on_end=on_end,
        kill=kill,
    )
