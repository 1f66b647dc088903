"""Following a child process from asyncio with bounded memory and a deadline.

The child is a plain ``subprocess.Popen`` watched through a pidfd, not an
asyncio subprocess: exit must be noticed even while a background grandchild
still holds the output pipes open, and the pipes must be handed over (not
closed) when that happens.

Not here: what the command is (``enter``), what is kept of its output
(``output``), killing its cgroup (``cgroups``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from runtools.server.sandbox.driver import StreamName
from runtools.server.sandbox.output import READ_CHUNK, CappedStream, Leftovers

__all__ = ["Child", "Exited", "Output", "follow", "spawn"]

# After the command exits, output it wrote is already in the pipe; wait this
# long for more (or for EOF) before deciding the pipe belongs to a background
# process.
LINGER_IDLE_S = 0.05
LINGER_MAX_S = 0.5
# How long a killed command may take to disappear. A frozen (paused) sandbox
# only lets it die when thawed; the caller must not wait for that.
KILL_GRACE_S = 5.0
_EXIT = "exit"


@dataclass(frozen=True)
class Output:
    stream: StreamName
    data: bytes


@dataclass(frozen=True)
class Exited:
    exit_code: int
    duration_ms: int
    timed_out: bool
    stdout_truncated: bool
    stderr_truncated: bool


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    pidfd: int
    stdout_fd: int
    stderr_fd: int
    started: float


def _pipe() -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    # A larger pipe means fewer wake-ups when a command floods its output.
    with contextlib.suppress(OSError):
        fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, READ_CHUNK)
    return r, w


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    preexec: Callable[[], None] | None = None,
) -> Child:
    """Start ``argv`` in a new session with stdin from /dev/null and piped output.

    ``preexec`` runs in the forked child before ``exec`` (one system call's
    worth: the child of a threaded process must not take locks). Raises
    ``OSError`` or ``subprocess.SubprocessError`` if it cannot be started;
    callers translate them.
    """
    out_r, out_w = _pipe()
    err_r, err_w = _pipe()
    try:
        # A new session detaches the command from any terminal the service has.
        proc = subprocess.Popen(  # noqa: S603 - argv is built by the driver, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            env=dict(env),
            close_fds=True,
            start_new_session=True,
            preexec_fn=preexec,  # one system call, see the docstring
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    started = time.monotonic()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:
        proc.kill()
        proc.wait()
        os.close(out_r)
        os.close(err_r)
        raise
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    return Child(proc=proc, pidfd=pidfd, stdout_fd=out_r, stderr_fd=err_r, started=started)


def exit_code_of(returncode: int) -> int:
    """Shell convention: death by signal N is reported as 128+N."""
    return 128 - returncode if returncode < 0 else returncode


async def follow(
    child: Child,
    *,
    timeout_s: float,
    max_output_bytes: int,
    kill: Callable[[], Awaitable[None]],
    leftovers: Leftovers,
) -> AsyncGenerator[Output | Exited, None]:
    """Yield capped output as it arrives, then one ``Exited``.

    On timeout ``kill`` is awaited (it must kill the whole process tree). If
    the consumer stops early the command is killed as well. Pipes still held
    open by background processes, and a child that did not die in time, are
    given to ``leftovers``.
    """
    loop = asyncio.get_running_loop()
    # (stream, data) or (stream, None) at EOF, or ("exit", None).
    queue: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue()
    caps: dict[StreamName, CappedStream] = {
        "stdout": CappedStream(max_output_bytes),
        "stderr": CappedStream(max_output_bytes),
    }
    open_fds: dict[StreamName, int] = {"stdout": child.stdout_fd, "stderr": child.stderr_fd}

    def on_readable(name: StreamName) -> None:
        fd = open_fds[name]
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            os.close(fd)
            del open_fds[name]
            queue.put_nowait((name, None))
            return
        # Capping here (not in the consumer) bounds memory even when the
        # consumer is slow: at most max_output_bytes per stream is queued.
        kept = caps[name].admit(data)
        if kept:
            queue.put_nowait((name, kept))

    def on_exit() -> None:
        loop.remove_reader(child.pidfd)
        queue.put_nowait((_EXIT, None))

    for stream, fd in open_fds.items():
        loop.add_reader(fd, on_readable, stream)
    loop.add_reader(child.pidfd, on_exit)
    watching_pid = True

    deadline = child.started + timeout_s
    timed_out = exited = False
    kill_deadline = linger_deadline = 0.0
    ended_at: float | None = None
    try:
        while not (exited and not open_fds):
            now = time.monotonic()
            if exited:
                wait = min(LINGER_IDLE_S, linger_deadline - now)
            elif timed_out:
                wait = kill_deadline - now
            else:
                wait = deadline - now
            try:
                if wait <= 0:
                    raise TimeoutError
                kind, data = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if exited:
                    break
                if timed_out:
                    break  # did not die in time (frozen); leftovers will reap it
                timed_out = True
                await kill()
                kill_deadline = time.monotonic() + KILL_GRACE_S
                continue
            if kind == _EXIT:
                exited = True
                watching_pid = False
                ended_at = time.monotonic()
                linger_deadline = ended_at + LINGER_MAX_S
            elif data is not None:
                yield Output(stream="stdout" if kind == "stdout" else "stderr", data=data)
        # Not exited means the kill did not land in time (a frozen sandbox):
        # it has been sent SIGKILL and dies as soon as it can run.
        code = exit_code_of(child.proc.wait()) if exited else 128 + signal.SIGKILL
        end = ended_at if ended_at is not None else time.monotonic()
        yield Exited(
            exit_code=code,
            duration_ms=int((end - child.started) * 1000),
            timed_out=timed_out,
            stdout_truncated=caps["stdout"].truncated,
            stderr_truncated=caps["stderr"].truncated,
        )
    finally:
        if not exited and not timed_out:
            # The consumer went away (or was cancelled): do not leave the
            # command running unobserved.
            with contextlib.suppress(Exception):
                await asyncio.shield(kill())
        for fd in open_fds.values():
            loop.remove_reader(fd)
            leftovers.adopt_pipe(fd)
        if watching_pid:
            loop.remove_reader(child.pidfd)
        if child.proc.poll() is None:
            leftovers.adopt_process(child.proc, child.pidfd)
        else:
            os.close(child.pidfd)
