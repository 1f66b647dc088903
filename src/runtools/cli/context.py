"""What every API command shares: the global options, the client, and error handling.

``runtools --api-url URL --api-key KEY <command>``: the key wins over
``RUNTOOLS_API_KEY``, which wins over the login stored for the API URL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer

from runtools import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunTools,
    RunToolsError,
)
from runtools._base_client import API_URL_ENV, DEFAULT_BASE_URL, _normalise_url
from runtools._credentials import (
    API_KEY_ENV,
    FROM_ARGUMENT,
    FROM_ENVIRONMENT,
    StoredSessionCredential,
)
from runtools._login_store import LoginStore, LoginStoreError, StoredLogin
from runtools.cli.output import (
    EXIT_AUTHENTICATION,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_PERMISSION,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    fail,
    note,
)

NOT_SIGNED_IN = "not signed in: run `runtools login`, set RUNTOOLS_API_KEY, or pass --api-key"


@dataclass(frozen=True)
class Globals:
    api_url: str | None = None
    api_key: str | None = None


def globals_of(ctx: typer.Context) -> Globals:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, Globals) else Globals()


def api_url_of(ctx: typer.Context, *, as_json: bool = False) -> str:
    value = globals_of(ctx).api_url or os.environ.get(API_URL_ENV) or DEFAULT_BASE_URL
    try:
        return _normalise_url(value, setting="--api-url")
    except ValueError as exc:
        fail(str(exc), code=EXIT_USAGE, as_json=as_json)


def login_store() -> LoginStore:
    return LoginStore.from_environ()


def exit_code_for(exc: RunToolsError) -> int:
    if isinstance(exc, MissingCredentialsError | AuthenticationError):
        return EXIT_AUTHENTICATION
    if isinstance(exc, PermissionDeniedError):
        return EXIT_PERMISSION
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, APIConnectionError | RateLimitError):
        return EXIT_UNAVAILABLE
    if isinstance(exc, APIStatusError) and exc.status_code >= 500:
        return EXIT_UNAVAILABLE
    return EXIT_ERROR


@contextmanager
def api_errors(as_json: bool) -> Iterator[None]:
    """Turn any SDK error into one line on stderr and the exit code of its class."""
    try:
        yield
    except MissingCredentialsError:
        fail(NOT_SIGNED_IN, code=EXIT_AUTHENTICATION, as_json=as_json, error_code="unauthorized")
    except APIStatusError as exc:
        message = exc.message
        if (
            isinstance(exc, RateLimitError)
            and exc.retry_after is not None
            and "retry in" not in message  # this service's messages say it already
        ):
            message += f"; retry in {exc.retry_after:.0f}s"
        fail(
            message,
            code=exit_code_for(exc),
            as_json=as_json,
            error_code=exc.code,
            request_id=exc.request_id,
        )
    except APIConnectionError as exc:
        target = exc.request.url.copy_with(path="/", query=None)
        fail(f"cannot reach {target}: {exc.message}", code=EXIT_UNAVAILABLE, as_json=as_json)
    except APIResponseValidationError as exc:
        fail(exc.message, code=EXIT_UNAVAILABLE, as_json=as_json, request_id=exc.request_id)
    except RunToolsError as exc:
        fail(str(exc), code=exit_code_for(exc), as_json=as_json)
    except ValueError as exc:  # a bad argument the SDK refused before sending
        fail(str(exc), code=EXIT_USAGE, as_json=as_json)


def client(ctx: typer.Context, *, as_json: bool = False) -> RunTools:
    """A client with the credential that wins: --api-key, RUNTOOLS_API_KEY, stored login."""
    api_url = api_url_of(ctx, as_json=as_json)
    with api_errors(as_json):
        return RunTools(api_key=globals_of(ctx).api_key, base_url=api_url)
    raise AssertionError("unreachable")  # api_errors exits on failure


def stored_login_client(api_url: str, login: StoredLogin, store: LoginStore) -> RunTools:
    """A client using exactly this stored session (refreshing it), whatever the environment says."""
    assert login.access_token is not None
    rt = RunTools(access_token=login.access_token, base_url=api_url)
    rt._credential = StoredSessionCredential(login, store)
    return rt


def source_label(rt: RunTools, store: LoginStore) -> tuple[str, str]:
    """(machine name, human phrase) for where the client's credential came from."""
    source = getattr(rt.credential, "source", FROM_ARGUMENT)
    if source == FROM_ARGUMENT:
        return "flag", "the --api-key flag"
    if source == FROM_ENVIRONMENT:
        return "environment", f"the {API_KEY_ENV} environment variable"
    return "stored", f"the stored login in {store.path}"


def key_in_effect(ctx: typer.Context) -> str | None:
    """``"--api-key"`` or ``"RUNTOOLS_API_KEY"`` when a key wins over any stored login."""
    if globals_of(ctx).api_key:
        return "--api-key"
    if os.environ.get(API_KEY_ENV):
        return API_KEY_ENV
    return None


def warn_key_wins(ctx: typer.Context) -> str | None:
    """Say so when the login being stored will not be used; the winner's name, if any."""
    winner = key_in_effect(ctx)
    if winner == API_KEY_ENV:
        note(
            f"warning: {API_KEY_ENV} is set, and it wins over a stored login: commands and the "
            f"SDK keep using that key. To use this login, unset it (unset {API_KEY_ENV})."
        )
    elif winner is not None:
        note("warning: --api-key is given, and it wins over a stored login in this command")
    return winner


@dataclass(frozen=True)
class Overridden:
    """A credential that is there but not used, because one before it in the order wins."""

    source: str  # "environment" or "stored"
    described: str
    winner: str  # what wins over it, as a person would type it


def overridden(ctx: typer.Context, api_url: str, store: LoginStore) -> list[Overridden]:
    """What --api-key and RUNTOOLS_API_KEY hide, in the order the CLI would otherwise use."""
    flag = bool(globals_of(ctx).api_key)
    env = bool(os.environ.get(API_KEY_ENV))
    hidden = []
    if flag and env:
        hidden.append(
            Overridden("environment", f"the {API_KEY_ENV} environment variable", "--api-key")
        )
    if flag or env:
        with contextlib.suppress(LoginStoreError):
            login = store.get(api_url)
            if login is not None:
                kind = "session" if login.type == "session" else "API key"
                hidden.append(
                    Overridden(
                        "stored",
                        f"the stored {kind} login in {store.path}",
                        "--api-key" if flag else API_KEY_ENV,
                    )
                )
    return hidden
