"""The SSH server into sandboxes (``RUNTOOLS_SSH_PORT``), on asyncssh.

SSH in, a sandbox's process out, as the HTTP routers are for the API: the
user names the sandbox (id or name), public-key authentication is the only
kind offered, and who is let in is the service's to say
(``services/sandboxes/ssh.py``). A refused key gets what any refused key
gets: "Permission denied (publickey)". A session runs the command it was
given (its exit status returned) or a login shell, on a pseudo-terminal
when the client asks for one (resizes follow); it ends when the process
does, which a pause or destroy of the sandbox makes happen. The ``sftp``
subsystem (sftp, and scp, which speaks SFTP) runs the sandbox's own
``sftp-server`` as the sandbox user, so it reaches no more than a command.

The host key is made once per node, an ed25519 key in ``RUNTOOLS_HOME``
(mode 0600, beside the embedded database), and kept from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import asyncssh

from runtools.server.domain.audit import RequestContext
from runtools.server.domain.errors import ServiceError
from runtools.server.domain.ids import new_request_id
from runtools.server.domain.ssh_keys import fingerprint_of
from runtools.server.sandbox.driver import SandboxSession, TerminalSize
from runtools.server.services.sandboxes.ssh import SandboxSsh, SshAdmission

__all__ = ["HOST_KEY_FILE", "SshServer", "host_key"]

logger = logging.getLogger("runtools.ssh")
# asyncssh logs every command and channel at INFO: commands may carry secrets.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

HOST_KEY_FILE = "ssh_host_ed25519_key"
LOGIN_TIMEOUT_S = 30
# Keys one connection may offer, as OpenSSH's MaxAuthTries: no trying a whole keyring.
MAX_AUTH_TRIES = 6
# The sftp subsystem: the sandbox's own server program, if its userland has one.
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
SFTP_COMMAND = (
    f"if [ -x {SFTP_SERVER} ]; then exec {SFTP_SERVER}; fi; "
    "echo 'runtools: this sandbox has no sftp-server (openssh-sftp-server)' >&2; exit 127"
)


def host_key(home: Path) -> asyncssh.SSHKey:
    """This node's host key: read from ``home``, or made there (0600) the first time."""
    path = home / HOST_KEY_FILE
    try:
        return asyncssh.read_private_key(str(path))
    except FileNotFoundError:
        pass
    key = asyncssh.generate_private_key("ssh-ed25519")
    data = key.export_private_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this node made it meanwhile
        return asyncssh.read_private_key(str(path))
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return key


class _Connection(asyncssh.SSHServer):
    def __init__(self, gate: SandboxSsh) -> None:
        self._gate = gate
        self._candidate: SshAdmission | None = None
        self.admission: SshAdmission | None = None
        self._conn: asyncssh.SSHServerConnection | None = None
        self._recorded: asyncio.Task[None] | None = None
        self._offered: set[bytes] = set()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn = None

    def begin_auth(self, username: str) -> bool:
        return True  # every user must authenticate

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        self._offered.add(key.public_data)  # a key is asked about, then signed with
        if len(self._offered) > MAX_AUTH_TRIES:
            self._candidate = None
            if self._conn is not None:
                self._conn.close()
            return False
        try:
            admission = await self._gate.admit(username, fingerprint_of(key.public_data))
        except Exception:
            logger.exception("SSH admission check failed")
            admission = None
        # The last key validated is the one whose signature then succeeds, if any.
        self._candidate = admission
        return admission is not None

    def auth_completed(self) -> None:
        self.admission = self._candidate
        if self.admission is not None:
            self._recorded = asyncio.get_running_loop().create_task(
                self._gate.record(self.admission, self._context())
            )

    async def recorded(self) -> None:
        if self._recorded is not None:
            await self._recorded

    def _context(self) -> RequestContext:
        peer = self._conn.get_extra_info("peername") if self._conn else None
        client = self._conn.get_extra_info("client_version") if self._conn else None
        return RequestContext(
            request_id=new_request_id(),
            ip=str(peer[0]) if peer else None,
            user_agent=str(client)[:256] if client else None,
        )

    def connection_requested(self, dest_host: str, dest_port: int, *args: Any) -> bool:
        return False  # no port forwarding: a sandbox's network is its own

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False

    def session_requested(self) -> asyncssh.SSHServerSession[bytes] | bool:
        if self.admission is None:
            return False
        return _Session(self, self._gate, self.admission)


class _Session(asyncssh.SSHServerSession[bytes]):
    """One channel: a command or a shell in the sandbox."""

    def __init__(self, connection: _Connection, gate: SandboxSsh, admission: SshAdmission) -> None:
        self._connection = connection
        self._gate = gate
        self._admission = admission
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._command: str | None = None
        self._terminal: TerminalSize | None = None
        self._input: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._writable = asyncio.Event()
        self._writable.set()
        self._process: SandboxSession | None = None
        self._task: asyncio.Task[None] | None = None

    # -- requests before the session starts ------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any
    ) -> bool:
        columns, rows = term_size[0] or 80, term_size[1] or 24
        self._terminal = TerminalSize(term=term_type[:64], columns=columns, rows=rows)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        if "\0" in command:
            return False
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != "sftp":
            return False
        # The sandbox's own sftp-server, as the sandbox user: it reaches what that
        # user may, in the sandbox's mounts (scp speaks SFTP too).
        self._command = SFTP_COMMAND
        self._terminal = None
        return True

    def session_started(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- while it runs ---------------------------------------------------------

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._input.put_nowait(data)

    def eof_received(self) -> bool:
        self._input.put_nowait(None)
        return True  # keep the channel open for the output

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self._terminal is not None:
            self._terminal = TerminalSize(self._terminal.term, width, height)
        if self._process is not None:
            self._process.resize(width, height)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # -- the process -----------------------------------------------------------

    async def _run(self) -> None:
        chan = self._chan
        assert chan is not None
        status = 255
        try:
            await self._connection.recorded()
            async with self._gate.session(
                self._admission, self._command, self._terminal
            ) as process:
                self._process = process
                feeder = asyncio.get_running_loop().create_task(self._feed(process))
                try:
                    while (item := await process.read()) is not None:
                        stream, data = item
                        await self._writable.wait()
                        if stream == "stderr":
                            chan.write_stderr(data)
                        else:
                            chan.write(data)
                    status = await process.wait()
                finally:
                    feeder.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feeder
        except ServiceError as exc:
            with contextlib.suppress(Exception):
                chan.write_stderr(f"runtools: {exc.message}\r\n".encode())
        except asyncio.CancelledError:
            return
        except Exception:
            logger.exception("SSH session into sandbox %s failed", self._admission.sandbox_id)
            with contextlib.suppress(Exception):
                chan.write_stderr(b"runtools: the session could not be started\r\n")
        finally:
            self._process = None
        with contextlib.suppress(Exception):
            chan.exit(status)

    async def _feed(self, process: SandboxSession) -> None:
        while True:
            data = await self._input.get()
            if data is None:
                process.close_stdin()
                return
            await process.write(data)


class SshServer:
    """The listening SSH server of this node; ``start`` then ``stop``."""

    def __init__(self, gate: SandboxSsh, *, host: str, port: int, home: Path) -> None:
        self._gate = gate
        self._host = host
        self._port = port
        self._home = home
        self._server: asyncssh.SSHAcceptor | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the one given for 0)."""
        if self._server is None:
            return self._port
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    async def start(self) -> None:
        key = await asyncio.to_thread(host_key, self._home)
        self._server = await asyncssh.create_server(
            lambda: _Connection(self._gate),
            self._host,
            self._port,
            server_host_keys=[key],
            encoding=None,
            login_timeout=LOGIN_TIMEOUT_S,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            reuse_address=True,
        )
        self._gate.port = self.port
        logger.info("SSH into sandboxes on %s port %d", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
