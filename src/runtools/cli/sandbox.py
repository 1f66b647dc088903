"""``runtools sandbox …``: create sandboxes, run commands in them, move files.

A sandbox's name works wherever its id does.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from runtools import BadRequestError, ExecChunk, ExecExit, RunTools, Sandbox
from runtools._archives import directory_bytes
from runtools.cli.client import JsonFlag, api_client
from runtools.cli.confirm import YesFlag, confirm
from runtools.cli.output import EXIT_USAGE, emit_json, fail

app = typer.Typer(
    help=(
        "Sandboxes: isolated Linux environments for running commands.\n\n"
        "Authenticates with --api-key, RUNTOOLS_API_KEY or the stored login "
        "(scopes sandbox:*); "
        "a name works wherever an id does."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
files_app = typer.Typer(
    help="Upload, download and list a sandbox's files (/workspace, /tmp, /home/user).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(files_app, name="files")

#: Folders smaller than this go up without a progress bar: it would only flicker.
PROGRESS_FROM_BYTES = 8 * 1024 * 1024
SandboxArg = Annotated[str, typer.Argument(help="Sandbox id or name", show_default=False)]


def _env(pairs: list[str] | None, *, as_json: bool) -> dict[str, str] | None:
    if not pairs:
        return None
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--env takes NAME=VALUE, got {pair!r}", code=EXIT_USAGE, as_json=as_json)
        env[name] = value
    return env


def _record(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.model_dump(mode="json", by_alias=True)


def _line(sandbox: Sandbox) -> str:
    tags = ",".join(sandbox.tags) or "-"
    return f"{sandbox.id}  {sandbox.name or '-':<20}  {sandbox.status:<10}  {tags}"


def _show(sandbox: Sandbox, as_json: bool) -> None:
    if as_json:
        emit_json(_record(sandbox))
    else:
        typer.echo(_line(sandbox))
        if sandbox.status_message:
            typer.echo(f"  {sandbox.status_message}")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Friendly name, unique in the org")] = None,
    template: Annotated[
        str | None,
        typer.Option(help="Root filesystem (runtools sandbox templates) [default: base-ubuntu]"),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable)")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeatable)")] = None,
    idle_timeout: Annotated[int | None, typer.Option(help="Pause after N idle seconds")] = None,
    vcpus: Annotated[float | None, typer.Option(help="CPUs [default: 1]")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory in MiB [default: 512]")] = None,
    disk: Annotated[int | None, typer.Option(help="Writable space in MiB [default: 1024]")] = None,
    ssh_key: Annotated[
        list[str] | None,
        typer.Option(
            "--ssh-key", help="A registered SSH key's id to let in over SSH too (repeatable)"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a sandbox and wait until it runs.

    Your own registered SSH keys (and admins') always let you in with
    `runtools sandbox ssh`; --ssh-key lets in another member's key too.

    Examples:

        runtools sandbox create --name my-env --template base-ubuntu

        runtools sandbox create --name py --template python-3.12   # one an operator imported

        runtools sandbox create --name ci --tag ci --env NODE_ENV=test --memory 1024 --json

        runtools sandbox create --name pair --ssh-key sshk_2bKx7TgQ
    """
    resources = {
        k: v for k, v in (("vcpus", vcpus), ("memory", memory), ("disk", disk)) if v is not None
    }
    with api_client(ctx, as_json=as_json) as rt:
        sandbox = rt.sandbox.create(
            name=name,
            template=template,
            tags=tag,
            env=_env(env, as_json=as_json),
            idle_timeout=idle_timeout,
            resources=resources or None,
            ssh_keys=ssh_key,
        )
    _show(sandbox, as_json)


@app.command("templates")
def templates(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the templates a sandbox can start from, the default first.

    A template is a root filesystem: a sandbox's / is the template, read-only
    and shared, with the sandbox's own writable layer on top. Operators add
    them with `runtools admin templates import`.

    Examples:

        runtools sandbox templates

        runtools sandbox templates --json | jq -r '.data[].name'
    """
    with api_client(ctx, as_json=as_json) as rt:
        found = rt.templates.list()
    if as_json:
        emit_json({"data": [t.model_dump(mode="json", by_alias=True) for t in found]})
        return
    for template in found:
        names = ", ".join([template.name, *template.aliases])
        default = " (default)" if template.is_default else ""
        typer.echo(f"{names:<32}  {template.description}{default}")


@app.command("list")
def list_sandboxes(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Comma-separated statuses")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Must have this tag (repeatable)")] = None,
    template: Annotated[str | None, typer.Option(help="Only this template")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every sandbox of the org (admins)")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List your sandboxes, newest first (every page).

    Examples:

        runtools sandbox list

        runtools sandbox list --status running,paused --tag ci --json
    """
    with api_client(ctx, as_json=as_json) as rt:
        found = list(rt.sandbox.list(status=status, tags=tag, template=template, all=all_))
    if as_json:
        emit_json({"data": [_record(s) for s in found]})
        return
    for sandbox in found:
        typer.echo(_line(sandbox))


@app.command("get")
def get(
    ctx: typer.Context,
    sandbox: SandboxArg,
    as_json: JsonFlag = False,
) -> None:
    """Show one sandbox: id, name, status and tags (with --json, every field).

    Examples:

        runtools sandbox get my-env

        runtools sandbox get sandbox-4fQe2WbKx7Tg --json

    In a script, resume it only if it is paused (by hand or after idling):

        [ "$(runtools sandbox get my-env --json | jq -r .status)" = paused ] \\
            && runtools sandbox resume my-env
    """
    with api_client(ctx, as_json=as_json) as rt:
        found = rt.sandbox.get(sandbox)
    _show(found, as_json)


@app.command("exec")
def exec_command(
    ctx: typer.Context,
    sandbox: SandboxArg,
    command: Annotated[str, typer.Argument(help="Shell command (run with /bin/sh -c)")],
    timeout: Annotated[int | None, typer.Option(help="Milliseconds [default: 30000]")] = None,
    cwd: Annotated[str | None, typer.Option(help="Directory [default: /workspace]")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeatable)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a command, streaming its output; exit with the command's exit code.

    With --json, wait for the command and print one JSON object (stdout,
    stderr, exitCode, durationMs, timedOut, …) instead of streaming.

    Examples:

        runtools sandbox exec my-env "npm test"

        runtools sandbox exec my-env "python3 train.py" --timeout 600000 --env SEED=1

        runtools sandbox exec my-env "ls -la" --json
    """
    variables = _env(env, as_json=as_json)
    with api_client(ctx, as_json=as_json) as rt:
        if as_json:
            result = rt.sandbox.exec(sandbox, command, timeout=timeout, cwd=cwd, env=variables)
            emit_json(result.model_dump(mode="json", by_alias=True))
            raise typer.Exit(result.exit_code)
        ended: ExecExit | None = None
        for event in rt.sandbox.exec_stream(
            sandbox, command, timeout=timeout, cwd=cwd, env=variables
        ):
            if isinstance(event, ExecChunk):
                out = sys.stdout if event.stream == "stdout" else sys.stderr
                out.write(event.data)
                out.flush()
            else:
                ended = event
    if ended is None:
        fail("the command's output ended without an exit status")
    if ended.timed_out:
        sys.stderr.write("error: the command timed out and was killed\n")
    for stream, cut in (("stdout", ended.stdout_truncated), ("stderr", ended.stderr_truncated)):
        if cut:
            sys.stderr.write(f"note: {stream} was truncated by the server\n")
    raise typer.Exit(ended.exit_code)


@app.command("pause")
def pause(ctx: typer.Context, sandbox: SandboxArg, as_json: JsonFlag = False) -> None:
    """Freeze every process of a sandbox; its files and memory stay as they are.

    A paused sandbox runs nothing (exec and files answer "resume it first")
    until `runtools sandbox resume`. One with --idle-timeout is paused by
    the service itself after that many idle seconds.

    Examples:

        runtools sandbox pause my-env

        runtools sandbox pause sandbox-4fQe2WbKx7Tg --json
    """
    with api_client(ctx, as_json=as_json) as rt:
        changed = rt.sandbox.pause(sandbox)
    _show(changed, as_json)


@app.command("kill")
def kill(ctx: typer.Context, sandbox: SandboxArg, as_json: JsonFlag = False) -> None:
    """Kill every process of a sandbox's commands; it stays running, with its files.

    The way back when a sandbox is at its process limit (a fork bomb, a
    runaway background job): commands are refused with "at its limit of N
    processes" until its processes are killed. Commands still running end
    as killed (exit code 137). Nothing is asked first: files are kept.

    Examples:

        runtools sandbox kill my-env

        runtools sandbox kill my-env && runtools sandbox exec my-env "ls"
    """
    with api_client(ctx, as_json=as_json) as rt:
        changed = rt.sandbox.kill(sandbox)
    _show(changed, as_json)


@app.command(
    "ssh", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)
def ssh(
    ctx: typer.Context,
    sandbox: SandboxArg,
    command: Annotated[
        list[str] | None,
        typer.Argument(help="A command to run instead of a shell", show_default=False),
    ] = None,
    identity: Annotated[
        Path | None, typer.Option("--identity", "-i", help="The private key ssh uses")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="An ssh option, e.g. -o ServerAliveInterval=30 (repeatable)"
        ),
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the ssh command line instead of running it")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Open a shell in a sandbox (or run COMMAND) with the system's `ssh`.

    Needs an SSH key registered with `runtools ssh-key add`, and a server
    that serves SSH (RUNTOOLS_SSH_PORT). The exit code is the command's (255
    when ssh itself fails). Options go before the sandbox; everything after
    it is the command.

    Examples:

        runtools sandbox ssh my-env

        runtools sandbox ssh -i ~/.ssh/work_ed25519 my-env make test

        runtools sandbox ssh -o ServerAliveInterval=30 my-env

        runtools sandbox ssh --print my-env
    """
    with api_client(ctx, as_json=as_json) as rt:
        access = rt.sandbox.ssh_access(sandbox)
    argv = ["ssh", "-p", str(access.port)]
    if identity is not None:
        argv += ["-i", str(identity.expanduser())]
    for value in option or []:
        argv += ["-o", value]
    argv += [f"{access.user}@{access.host}", *(command or [])]
    if as_json:
        emit_json({**access.model_dump(mode="json", by_alias=True), "argv": argv})
        return
    if print_only:
        typer.echo(shlex.join(argv))
        return
    program = shutil.which("ssh")
    if program is None:
        fail("ssh is not installed: install the OpenSSH client", code=EXIT_USAGE)
    raise typer.Exit(subprocess.call([program, *argv[1:]]))  # noqa: S603 - argv is ours


@app.command("resume")
def resume(ctx: typer.Context, sandbox: SandboxArg, as_json: JsonFlag = False) -> None:
    """Thaw a paused sandbox: its processes go on where they stopped.

    Examples:

        runtools sandbox resume my-env

        runtools sandbox resume my-env && runtools sandbox exec my-env "make test"
    """
    with api_client(ctx, as_json=as_json) as rt:
        changed = rt.sandbox.resume(sandbox)
    _show(changed, as_json)


@app.command("destroy")
def destroy(
    ctx: typer.Context, sandbox: SandboxArg, yes: YesFlag = False, as_json: JsonFlag = False
) -> None:
    """Kill everything in a sandbox and delete its files. This cannot be undone.

    The record stays (status destroyed) and the name is free again. On a
    terminal it asks first; --yes skips the question (scripts, whose stdin
    is not a terminal, are never asked).

    Examples:

        runtools sandbox destroy my-env

        runtools sandbox destroy my-env --yes --json

        runtools sandbox list --tag ci --json | jq -r '.data[].id' \\
            | xargs -n1 runtools sandbox destroy
    """
    confirm(
        f"Destroy sandbox {sandbox}? Its processes are killed and its files deleted.",
        yes=yes,
        as_json=as_json,
    )
    with api_client(ctx, as_json=as_json) as rt:
        changed = rt.sandbox.destroy(sandbox)
    _show(changed, as_json)


@files_app.command("put")
def put_file(
    ctx: typer.Context,
    sandbox: SandboxArg,
    local: Annotated[Path, typer.Argument(help="Local file or folder, or - for stdin")],
    remote: Annotated[str, typer.Argument(help="Path in the sandbox (relative: /workspace)")],
    as_json: JsonFlag = False,
) -> None:
    """Upload a file, or a folder's whole content in one streamed tar.gz.

    A folder lands in REMOTE (created if missing, merged if it exists);
    links are sent as links. A progress bar shows on a terminal.

    Examples:

        runtools sandbox files put my-env ./app.py app.py

        runtools sandbox files put my-env ./project /workspace/project

        echo hello | runtools sandbox files put my-env - /tmp/hello.txt
    """
    if str(local) != "-" and local.is_dir():
        _put_folder(ctx, sandbox, local, remote, as_json=as_json)
        return
    try:
        data = sys.stdin.buffer.read() if str(local) == "-" else local.read_bytes()
    except OSError as exc:
        fail(f"cannot read {local}: {exc.strerror}", as_json=as_json)
    with api_client(ctx, as_json=as_json) as rt:
        rt.sandbox.write_file(sandbox, remote, data)
    if as_json:
        emit_json({"path": remote, "size": len(data)})
    else:
        typer.echo(f"wrote {len(data)} bytes to {remote}")


def _put_folder(
    ctx: typer.Context, sandbox: str, local: Path, remote: str, *, as_json: bool
) -> None:
    with api_client(ctx, as_json=as_json) as rt, _progress(local, show=not as_json) as advance:
        try:
            written = rt.sandbox.upload_dir(sandbox, local, remote, on_progress=advance)
        except OSError as exc:
            fail(f"cannot read {exc.filename or local}: {exc.strerror}", as_json=as_json)
    if as_json:
        emit_json(written.model_dump(mode="json", by_alias=True))
    else:
        typer.echo(f"wrote {written.files} files ({written.size} bytes) to {written.path}")


@contextlib.contextmanager
def _progress(local: Path, *, show: bool) -> Iterator[Callable[[int], None] | None]:
    """A bytes-read progress bar on stderr, on a terminal only and for folders worth it."""
    total = directory_bytes(local)
    if not show or not sys.stderr.isatty() or total < PROGRESS_FROM_BYTES:
        yield None
        return
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"sending {local.name or local}", total=total)
        yield lambda n: bar.advance(task, n)


@files_app.command("get")
def get_file(
    ctx: typer.Context,
    sandbox: SandboxArg,
    remote: Annotated[str, typer.Argument(help="Path in the sandbox")],
    local: Annotated[Path | None, typer.Argument(help="Where to save [default: stdout]")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Download a file, or a directory (into a local folder, or as a tar to stdout).

    Examples:

        runtools sandbox files get my-env results.csv ./results.csv

        runtools sandbox files get my-env /tmp/log.txt | tail

        runtools sandbox files get my-env /workspace/project/out ./out

        runtools sandbox files get my-env /workspace/project > project.tar
    """
    with api_client(ctx, as_json=as_json) as rt:
        try:
            data = rt.sandbox.read_file(sandbox, remote)
        except BadRequestError as exc:
            if not exc.message.startswith("is a directory"):
                raise
            _get_directory(rt, sandbox, remote, local, as_json=as_json)
            return
    if local is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        local.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {local}: {exc.strerror}", as_json=as_json)
    if as_json:
        emit_json({"path": remote, "size": len(data), "savedTo": str(local)})


def _get_directory(
    rt: RunTools, sandbox: str, remote: str, local: Path | None, *, as_json: bool
) -> None:
    if local is None:
        for chunk in rt.sandbox.read_archive(sandbox, remote):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return
    try:
        files = rt.sandbox.download_dir(sandbox, remote, local)
    except (OSError, tarfile.TarError) as exc:
        fail(f"cannot save into {local}: {exc}", as_json=as_json)
    if as_json:
        emit_json({"path": remote, "files": files, "savedTo": str(local)})
    else:
        typer.echo(f"saved {files} files into {local}")


@files_app.command("ls")
def list_files(
    ctx: typer.Context,
    sandbox: SandboxArg,
    path: Annotated[str, typer.Argument(help="Directory in the sandbox")] = "/workspace",
    as_json: JsonFlag = False,
) -> None:
    """List a directory: size and name of each entry, directories marked with /.

    A relative PATH is under /workspace; the default is /workspace itself.

    Examples:

        runtools sandbox files ls my-env

        runtools sandbox files ls my-env src          # /workspace/src

        runtools sandbox files ls my-env /tmp --json | jq -r '.data[].path'
    """
    with api_client(ctx, as_json=as_json) as rt:
        entries = rt.sandbox.list_files(sandbox, path)
    if as_json:
        emit_json({"data": [e.model_dump(mode="json", by_alias=True) for e in entries]})
        return
    for entry in entries:
        suffix = "/" if entry.type == "directory" else ""
        typer.echo(f"{entry.size:>10}  {entry.name}{suffix}")
