"""``runtools login`` and ``runtools logout``: a session for this machine, stored per API URL."""

from __future__ import annotations

import contextlib
import os
import sys
import webbrowser
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from runtools import (
    AuthenticationError,
    DeviceLogin,
    Me,
    MissingCredentialsError,
    RunTools,
    RunToolsError,
    SessionTokens,
)
from runtools._login_store import LoginStore, StoredLogin
from runtools.cli.context import (
    api_errors,
    api_url_of,
    login_store,
    stored_login_client,
    warn_key_wins,
)
from runtools.cli.output import EXIT_UNAVAILABLE, emit_json, note

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]


def _can_open_browser() -> bool:
    if sys.platform.startswith("linux") or "SSH_CONNECTION" in os.environ:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def end_stored_session(api_url: str, login: StoredLogin | None, store: LoginStore) -> bool:
    """Revoke a stored session on the server; True if it is over (or there was none)."""
    if login is None or login.type != "session":
        return True
    try:
        with stored_login_client(api_url, login, store) as rt:
            rt.auth.logout()
    except (AuthenticationError, MissingCredentialsError):
        return True  # already ended
    except RunToolsError:
        return False
    return True


def whoami(api_url: str, tokens: SessionTokens) -> Me:
    with RunTools(access_token=tokens.access_token, base_url=api_url) as rt:
        return rt.me()


def store_session(api_url: str, tokens: SessionTokens, me: Me, store: LoginStore) -> None:
    """Save a new session's tokens as this API URL's login."""
    store.save(
        StoredLogin(
            api_url=api_url,
            type="session",
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=datetime.now(UTC) + timedelta(seconds=tokens.expires_in),
            session_id=me.credential.id,
            org_id=me.organization.id,
            org_name=me.organization.name,
            user_email=me.user.email if me.user else None,
        )
    )


def signed_in(
    api_url: str,
    me: Me,
    store: LoginStore,
    *,
    as_json: bool,
    verb: str,
    overridden_by: str | None = None,
) -> None:
    """Report the session now stored: one line, or one JSON object.

    ``overridden_by`` names what wins over the stored login (``RUNTOOLS_API_KEY``).
    """
    user = me.user
    if as_json:
        emit_json(
            {
                "apiUrl": api_url,
                "user": {"id": user.id, "email": user.email, "role": user.role} if user else None,
                "organization": {"id": me.organization.id, "name": me.organization.name},
                "sessionId": me.credential.id,
                "credentialFile": str(store.path),
                "inEffect": overridden_by is None,
                "overriddenBy": overridden_by,
            }
        )
        return
    who = f"{user.email} ({user.role})" if user else "?"
    typer.echo(f"{verb} {api_url} as {who} in {me.organization.name}.")


def login(
    ctx: typer.Context,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help="Sign in to this organization (by name) instead of the approver's current one",
        ),
    ] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the URL; do not open a browser")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Sign in from this terminal with a one-time code (OAuth device flow).

    Prints a URL and a code, opens your browser when there is one, and waits
    while you approve the code there (or with `runtools auth approve CODE`
    in a terminal that is signed in). The session lands in the approver's
    current organization, or in --org if you are a member of it. It is
    stored for this API URL in your config directory (RUNTOOLS_CONFIG_DIR),
    readable only by you, and refreshed automatically. While RUNTOOLS_API_KEY
    is set, that key wins over the login (a warning says so): unset it to
    use the login.

    Examples:

        runtools login

        runtools login --org acme

        runtools --api-url https://runtools.example.com login --no-browser
    """
    api_url = api_url_of(ctx, as_json=as_json)
    store = login_store()
    winner = warn_key_wins(ctx)
    with api_errors(as_json):
        with DeviceLogin(base_url=api_url) as device:
            grant = device.start()
            url = grant.verification_uri_complete or grant.verification_uri
            note(f"To sign in, open {grant.verification_uri}")
            note(f"and enter the code: {grant.user_code}")
            if not no_browser and _can_open_browser():
                try:
                    if webbrowser.open(url):
                        note("(opened in your browser)")
                except webbrowser.Error:
                    pass
            console = Console(stderr=True)
            with console.status("Waiting for approval…", spinner="dots"):
                tokens = device.wait(grant)
        if org is not None:
            tokens = _into_org(api_url, tokens, org)
        me = whoami(api_url, tokens)
        end_stored_session(api_url, store.get(api_url), store)
        store_session(api_url, tokens, me, store)
    signed_in(api_url, me, store, as_json=as_json, verb="Signed in to", overridden_by=winner)


def _into_org(api_url: str, tokens: SessionTokens, org: str) -> SessionTokens:
    """Move a fresh session into ``org``; on refusal, end it rather than leave it behind."""
    with RunTools(access_token=tokens.access_token, base_url=api_url) as rt:
        if tokens.org is not None and org in (tokens.org.name, tokens.org.id):
            return tokens
        try:
            return rt.auth.switch_org(org)
        except RunToolsError:
            with contextlib.suppress(RunToolsError):
                rt.auth.logout()
            raise


def logout(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Sign out: end the stored session on the server and forget it here.

    A stored API key (from `runtools auth set-key`) is only forgotten here;
    it keeps working until revoked with `runtools auth keys revoke`.

    Examples:

        runtools logout

        runtools --api-url https://runtools.example.com logout --json
    """
    api_url = api_url_of(ctx, as_json=as_json)
    store = login_store()
    with api_errors(as_json):
        login = store.get(api_url)
        ended = end_stored_session(api_url, login, store)
        forgotten = store.delete(api_url) if login is not None else False
    if as_json:
        emit_json({"apiUrl": api_url, "signedOut": forgotten, "sessionEnded": ended})
    elif login is None:
        typer.echo(f"Not signed in to {api_url}.")
    else:
        typer.echo(f"Signed out of {api_url}.")
    if not ended:
        note(
            "warning: could not reach the server to end the session; it ends by itself "
            "when idle, or end it from another device with `runtools auth sessions revoke`"
        )
        raise typer.Exit(EXIT_UNAVAILABLE)
