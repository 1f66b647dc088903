"""``runtools auth …``: who you are, your session's token, API keys, sessions, and approving
device sign-ins."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from runtools import RunTools
from runtools._credentials import API_KEY_ENV, StoredSessionCredential
from runtools._login_store import StoredLogin
from runtools.cli import keys, sessions
from runtools.cli.context import (
    Overridden,
    api_errors,
    api_url_of,
    client,
    key_in_effect,
    login_store,
    overridden,
    source_label,
    stored_login_client,
    warn_key_wins,
)
from runtools.cli.login import end_stored_session, signed_in, store_session, whoami
from runtools.cli.output import (
    EXIT_AUTHENTICATION,
    EXIT_USAGE,
    emit_json,
    fail,
    fields,
    note,
    when,
)

app = typer.Typer(
    help="Who you are, your session's token, API keys, sessions, and approving sign-ins.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(keys.app, name="keys")
app.add_typer(sessions.app, name="sessions")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]
KEY_PREFIXES = ("rt_live_", "rt_test_")


@app.command("status")
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the API URL, the credential in effect, where it came from and why, and who you are.

    The credential is the first of: the --api-key flag, the RUNTOOLS_API_KEY
    environment variable, the login stored for this API URL. One that is
    there but loses to another is listed as not used, with what wins over it.
    For a session, the expiry shown is its access token's (minutes; it is
    refreshed on use), not the end of the login.

    Examples:

        runtools auth status

        RUNTOOLS_API_KEY=rt_live_… runtools auth status --json
    """
    store = login_store()
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        me = rt.me()
    source, described = source_label(rt, store)
    hidden = overridden(ctx, rt.base_url, store)
    credential = me.credential
    user = me.user
    if as_json:
        payload: dict[str, Any] = {
            "apiUrl": rt.base_url,
            "source": source,
            "reason": _reason(source, hidden),
            "overrides": [h.source for h in hidden],
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
        ("Why", _reason(source, hidden)),
    ]
    rows += [("Not used", f"{h.described} ({h.winner} wins over it)") for h in hidden]
    rows += [
        ("User", f"{user.email} ({user.role})" if user else "-"),
        ("Organization", f"{me.organization.name} ({me.organization.id})"),
    ]
    if credential.type == "api_key":
        rows += [
            ("Key", f"{credential.name} ({credential.key_prefix}…, {credential.id})"),
            ("Scopes", " ".join(credential.scopes)),
            ("Effective", " ".join(me.effective_scopes)),
            ("Key expires", when(credential.expires_at, empty="never")),
        ]
    else:
        refreshed = " (refreshed automatically)" if source == "stored" else ""
        rows += [
            ("Session", credential.id or "-"),
            ("Effective", " ".join(me.effective_scopes)),
            ("Access token expires", when(credential.expires_at, empty="-") + refreshed),
        ]
    fields(rows)


def _reason(source: str, hidden: list[Overridden]) -> str:
    """Why this credential is the one in effect, in a sentence."""
    if source == "flag":
        return "--api-key was given; it wins over everything else"
    if source == "environment":
        return f"{API_KEY_ENV} is set; it wins over the stored login" + (
            " (unset it to use the login)" if hidden else ""
        )
    return "no --api-key and no RUNTOOLS_API_KEY: the login stored for this API URL is used"


@app.command("token")
def token(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print the signed-in session's access token, refreshed first if it is about to expire.

    For tools that send HTTP themselves (`curl`, scripts): the token goes
    to stdout alone. It is the stored login's (`runtools login`), whatever
    RUNTOOLS_API_KEY says, and it lives minutes: ask again rather than keep
    it. A stored API key (`runtools auth set-key`) has no token: use the
    key itself, as X-API-Key.

    Examples:

        curl -H "Authorization: Bearer $(runtools auth token)" http://127.0.0.1:8700/v1/me

        export RUNTOOLS_ACCESS_TOKEN=$(runtools auth token)

        runtools auth token --json
    """
    api_url = api_url_of(ctx, as_json=as_json)
    store = login_store()
    with api_errors(as_json):
        login = store.get(api_url)
    if login is None:
        fail(
            f"not signed in to {api_url}: run `runtools login`",
            code=EXIT_AUTHENTICATION,
            as_json=as_json,
            error_code="unauthorized",
        )
    if login.type != "session":
        fail(
            f"the login stored for {api_url} is an API key, which has no access token: "
            "send the key itself, as X-API-Key",
            code=EXIT_USAGE,
            as_json=as_json,
        )
    with api_errors(as_json), stored_login_client(api_url, login, store) as rt:
        access_token = rt.auth.access_token()
        session = rt.credential
    expires_at = session.expires_at if isinstance(session, StoredSessionCredential) else None
    if (winner := key_in_effect(ctx)) is not None:
        note(f"note: {winner} is in effect: other commands use that key, not this session")
    if as_json:
        emit_json(
            {
                "apiUrl": api_url,
                "accessToken": access_token,
                "tokenType": "Bearer",
                "expiresAt": expires_at.isoformat() if expires_at else None,
            }
        )
    else:
        typer.echo(access_token)


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
    winner = warn_key_wins(ctx)
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
                "inEffect": winner is None,
                "overriddenBy": winner,
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
    if key_in_effect(ctx) is not None:
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
