"""``runtools sandbox …``: create sandboxes, run commands in them, move files.

A sandbox's name works wherever its id does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from runtools import ExecChunk, ExecExit, Sandbox
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
    template: Annotated[str | None, typer.Option(help="Userland [default: base-ubuntu]")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable)")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE (repeatable)")] = None,
    idle_timeout: Annotated[int | None, typer.Option(help="Pause after N idle seconds")] = None,
    vcpus: Annotated[float | None, typer.Option(help="CPUs [default: 1]")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory in MiB [default: 512]")] = None,
    disk: Annotated[int | None, typer.Option(help="Writable space in MiB [default: 1024]")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a sandbox and wait until it runs.

    Examples:

        runtools sandbox create --name my-env --template base-ubuntu

        runtools sandbox create --name ci --tag ci --env NODE_ENV=test --memory 1024 --json
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
        )
    _show(sandbox, as_json)


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
    local: Annotated[Path, typer.Argument(help="Local file, or - for stdin")],
    remote: Annotated[str, typer.Argument(help="Path in the sandbox (relative: /workspace)")],
    as_json: JsonFlag = False,
) -> None:
    """Upload a file.

    Examples:

        runtools sandbox files put my-env ./app.py app.py

        echo hello | runtools sandbox files put my-env - /tmp/hello.txt
    """
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


@files_app.command("get")
def get_file(
    ctx: typer.Context,
    sandbox: SandboxArg,
    remote: Annotated[str, typer.Argument(help="Path in the sandbox")],
    local: Annotated[Path | None, typer.Argument(help="Where to save [default: stdout]")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Download a file (to stdout unless a local path is given).

    Examples:

        runtools sandbox files get my-env results.csv ./results.csv

        runtools sandbox files get my-env /tmp/log.txt | tail
    """
    with api_client(ctx, as_json=as_json) as rt:
        data = rt.sandbox.read_file(sandbox, remote)
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
