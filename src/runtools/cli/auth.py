"""``runtools auth …``: who you are, API keys, sessions, and approving device sign-ins."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from runtools import RunTools
from runtools._login_store import StoredLogin
from runtools.cli import keys, sessions
from runtools.cli.context import (
    api_errors,
    api_url_of,
    client,
    globals_of,
    login_store,
    source_label,
    stored_login_client,
)
from runtools.cli.login import end_stored_session, signed_in, store_session, whoami
from runtools.cli.output import EXIT_USAGE, emit_json, fail, fields, when

app = typer.Typer(
    help="Who you are, API keys, sessions, and approving sign-ins.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(keys.app, name="keys")
app.add_typer(sessions.app, name="sessions")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]
KEY_PREFIXES = ("rt_live_", "rt_test_")


@app.command("status")
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the API URL, the credential in effect and where it came from, and who you are.

    The credential is the first of: the --api-key flag, the RUNTOOLS_API_KEY
    environment variable, the login stored for this API URL.

    Examples:

        runtools auth status

        RUNTOOLS_API_KEY=rt_live_… runtools auth status --json
    """
    store = login_store()
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        me = rt.me()
    source, described = source_label(rt, store)
    credential = me.credential
    user = me.user
    if as_json:
        payload: dict[str, Any] = {
            "apiUrl": rt.base_url,
            "source": source,
            "credential": credential.model_dump(mode="json", by_alias=True),
            "user": user.model_dump(mode="json", by_alias=True) if user else None,
            "organization": me.organization.model_dump(mode="json", by_alias=True),
            "effectiveScopes": me.effective_scopes,
        }
        if source == "stored":
            payload["credentialFile"] = str(store.path)
        emit_json(payload)
        return
    kind = "API key" if credential.type == "api_key" else "session"
    rows = [
        ("API URL", rt.base_url),
        ("Credential", f"{kind} from {described}"),
        ("User", f"{user.email} ({user.role})" if user else "-"),
        ("Organization", f"{me.organization.name} ({me.organization.id})"),
    ]
    if credential.type == "api_key":
        rows += [
            ("Key", f"{credential.name} ({credential.key_prefix}…, {credential.id})"),
            ("Scopes", " ".join(credential.scopes)),
        ]
    else:
        rows.append(("Session", credential.id or "-"))
    rows += [
        ("Effective", " ".join(me.effective_scopes)),
        ("Expires", when(credential.expires_at, empty="never")),
    ]
    fields(rows)


@app.command("set-key")
def set_key(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Store an API key for the CLI, read from stdin (never from the command line).

    The key is checked against the server, then saved for this API URL in
    your config directory (mode 0600), replacing any stored login.

    Examples:

        printf '%s' "$RUNTOOLS_KEY" | runtools auth set-key

        runtools --api-url https://runtools.example.com auth set-key < key.txt
    """
    key = sys.stdin.read().strip()
    if not key:
        fail(
            "no key on stdin: printf '%s' \"$KEY\" | runtools auth set-key",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    if not key.startswith(KEY_PREFIXES):
        fail(
            "that is not a RunTools API key (rt_live_… or rt_test_…)",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    api_url = api_url_of(ctx, as_json=as_json)
    store = login_store()
    with api_errors(as_json):
        with RunTools(api_key=key, base_url=api_url) as rt:
            me = rt.me()
        end_stored_session(api_url, store.get(api_url), store)
        store.save(StoredLogin(api_url=api_url, type="api_key", api_key=key))
    credential = me.credential
    if as_json:
        emit_json(
            {
                "apiUrl": api_url,
                "credential": credential.model_dump(mode="json", by_alias=True),
                "credentialFile": str(store.path),
            }
        )
    else:
        typer.echo(
            f"Stored key {credential.name} ({credential.key_prefix}…) for {api_url} "
            f"in {store.path}."
        )


@app.command("switch-org")
def switch_org(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="The organization's name, e.g. acme")],
    as_json: JsonFlag = False,
) -> None:
    """Move the stored session to another of your organizations.

    The session you are signed in with ends, and one in ORG (where you must
    be a member) replaces it in the stored login. API keys belong to one
    organization: with a key in effect, create a key in the other
    organization instead.

    Examples:

        runtools auth switch-org acme

        runtools auth switch-org globex --json
    """
    api_url = api_url_of(ctx, as_json=as_json)
    store = login_store()
    login = store.get(api_url)
    if globals_of(ctx).api_key or os.environ.get("RUNTOOLS_API_KEY"):
        fail(
            "an API key is in effect (--api-key or RUNTOOLS_API_KEY); keys belong to one "
            "organization, only a signed-in session can switch",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    if login is None or login.type != "session":
        fail(
            f"not signed in to {api_url} with a session: run `runtools login --org {org}`",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    with api_errors(as_json):
        with stored_login_client(api_url, login, store) as rt:
            tokens = rt.auth.switch_org(org)
        me = whoami(api_url, tokens)
        store_session(api_url, tokens, me, store)
    signed_in(api_url, me, store, as_json=as_json, verb="Now signed in to")


@app.command("approve")
def approve(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The code the other device shows, e.g. BCDF-GHJK")],
    deny: Annotated[bool, typer.Option("--deny", help="Refuse the sign-in instead")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Approve a device sign-in (a `runtools login` elsewhere) from this signed-in terminal.

    The device signs in as you, in your current organization. Only approve
    a code you started yourself.

    Examples:

        runtools auth approve BCDF-GHJK

        runtools auth approve BCDF-GHJK --deny
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        decision = rt.auth.deny_device(code) if deny else rt.auth.approve_device(code)
    if as_json:
        emit_json(decision.model_dump(mode="json", by_alias=True))
        return
    verb = "Denied" if deny else "Approved"
    origin = f" from {decision.ip}" if decision.ip else ""
    typer.echo(f"{verb} sign-in {decision.user_code} ({decision.client_id}{origin}).")
