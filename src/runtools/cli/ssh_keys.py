"""``runtools ssh-key …``: your SSH public keys, which let you into sandboxes over SSH."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from runtools.cli.confirm import YesFlag, confirm
from runtools.cli.context import api_errors, client
from runtools.cli.output import EXIT_USAGE, emit_json, fail, fields, note, table, when

app = typer.Typer(
    help="Register, list and remove your SSH public keys (for `runtools sandbox ssh`).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]
SshKeyId = Annotated[str, typer.Argument(help="The key's id (sshk_…)")]
DEFAULT_FILE = "~/.ssh/id_ed25519.pub"
_PRIVATE = re.compile(r"PRIVATE KEY|PuTTY-User-Key-File", re.IGNORECASE)


def _wire(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return data


def _public_key(file: str, *, as_json: bool) -> str:
    path = Path(file).expanduser()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable"
        fail(
            f"cannot read {path}: {reason}. Make a key with: ssh-keygen -t ed25519",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    if _PRIVATE.search(text):
        # Never sent: a private key stays on this machine.
        hint = f" (did you mean {path}.pub?)" if Path(f"{path}.pub").exists() else ""
        fail(
            f"{path} is a private key, which must never leave your machine: "
            f"pass the public key, the .pub file{hint}",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    return text.strip()


@app.command("add")
def add_key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the key, e.g. my-laptop")],
    file: Annotated[
        str, typer.Option("--file", "-f", help="The public key file (.pub) to register")
    ] = DEFAULT_FILE,
    as_json: JsonFlag = False,
) -> None:
    """Register an SSH public key with the current organization.

    Accepted: ed25519, ECDSA (nistp256/384/521) and RSA of at least 3072
    bits. Only the public key is sent; a private key file is refused here,
    before anything leaves your machine.

    Examples:

        runtools ssh-key add my-laptop

        runtools ssh-key add ci --file ./deploy_key.pub

        runtools ssh-key add work --file ~/.ssh/id_ecdsa.pub --json | jq -r .fingerprint
    """
    text = _public_key(file, as_json=as_json)
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        key = rt.ssh_keys.add(name, text)
    if as_json:
        emit_json(_wire(key))
        return
    typer.echo(f"Added SSH key {key.name} ({key.id}): {key.key_type} {key.fingerprint}")


@app.command("list")
def list_keys(
    ctx: typer.Context,
    all_keys: Annotated[
        bool, typer.Option("--all", help="Every key of the organization (admins)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List your SSH keys (or, with --all, the organization's), newest first.

    Examples:

        runtools ssh-key list

        runtools ssh-key list --all --json | jq -r '.data[] | .id + " " + .fingerprint'
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        keys = list(rt.ssh_keys.list(all=all_keys))
    if as_json:
        emit_json({"data": [_wire(k) for k in keys]})
        return
    if not keys:
        note(f"No SSH keys. Add one with: runtools ssh-key add NAME --file {DEFAULT_FILE}")
        return
    table(
        ["ID", "NAME", "TYPE", "FINGERPRINT", "COMMENT", "ADDED", "LAST USED"],
        [
            [
                k.id,
                k.name or "-",
                k.key_type or "-",
                k.fingerprint or "-",
                k.comment or "-",
                when(k.created_at),
                when(k.last_used_at, empty="never"),
            ]
            for k in keys
        ],
    )


@app.command("get")
def get_key(ctx: typer.Context, key_id: SshKeyId, as_json: JsonFlag = False) -> None:
    """Show one SSH key.

    Examples:

        runtools ssh-key get sshk_2bKx7TgQ
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        key = rt.ssh_keys.get(key_id)
    if as_json:
        emit_json(_wire(key))
        return
    fields(
        [
            ("ID", key.id),
            ("Name", key.name or "-"),
            ("Type", key.key_type or "-"),
            ("Fingerprint", key.fingerprint or "-"),
            ("Comment", key.comment or "-"),
            ("Owner", key.owner_user_id or "-"),
            ("Added", when(key.created_at)),
            ("Last used", when(key.last_used_at, empty="never")),
        ]
    )


@app.command("remove")
def remove_key(
    ctx: typer.Context, key_id: SshKeyId, yes: YesFlag = False, as_json: JsonFlag = False
) -> None:
    """Remove an SSH key: it opens no new SSH session from now on.

    On a terminal it asks first (--yes skips the question).

    Examples:

        runtools ssh-key remove sshk_2bKx7TgQ

        runtools ssh-key remove sshk_2bKx7TgQ --yes --json
    """
    confirm(
        f"Remove SSH key {key_id}? It opens no new SSH session from now on.",
        yes=yes,
        as_json=as_json,
    )
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        key = rt.ssh_keys.remove(key_id)
    if as_json:
        emit_json(_wire(key))
        return
    typer.echo(f"Removed SSH key {key.name} ({key.id}).")
