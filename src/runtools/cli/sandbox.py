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
    """Show one sandbox.

    Example:

        runtools sandbox get my-env --json
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


def _lifecycle(verb: str, example: str) -> Any:
    def command(
        ctx: typer.Context,
        sandbox: SandboxArg,
        as_json: JsonFlag = False,
    ) -> None:
        with api_client(ctx, as_json=as_json) as rt:
            changed = getattr(rt.sandbox, verb)(sandbox)
        _show(changed, as_json)

    command.__doc__ = example
    return command


app.command("pause")(
    _lifecycle(
        "pause",
        "Freeze every process of a sandbox.\n\nExample:\n\n    runtools sandbox pause my-env",
    )
)
app.command("resume")(
    _lifecycle(
        "resume",
        "Thaw a paused sandbox.\n\nExample:\n\n    runtools sandbox resume my-env",
    )
)
app.command("destroy")(
    _lifecycle(
        "destroy",
        "Kill everything in a sandbox and delete its files.\n\n"
        "Example:\n\n    runtools sandbox destroy my-env",
    )
)


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
    """List a directory.

    Example:

        runtools sandbox files ls my-env /workspace/src
    """
    with api_client(ctx, as_json=as_json) as rt:
        entries = rt.sandbox.list_files(sandbox, path)
    if as_json:
        emit_json({"data": [e.model_dump(mode="json", by_alias=True) for e in entries]})
        return
    for entry in entries:
        suffix = "/" if entry.type == "directory" else ""
        typer.echo(f"{entry.size:>10}  {entry.name}{suffix}")
