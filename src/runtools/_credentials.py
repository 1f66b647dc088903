"""What the client authenticates with, and where it finds it.

Resolution order, decided once per client at construction:

1. ``api_key=`` or ``access_token=`` passed to the client (not both);
2. the ``RUNTOOLS_API_KEY`` environment variable;
3. a login stored by ``runtools login`` for this API URL.

A credential's secret never appears in its ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from runtools._exceptions import MissingCredentialsError
from runtools._login_store import LoginStore, StoredLogin

__all__ = [
    "AccessTokenCredential",
    "ApiKeyCredential",
    "Credential",
    "StoredSessionCredential",
    "resolve_credential",
]

#: Where a credential came from, as ``runtools auth status`` reports it.
FROM_ARGUMENT = "argument"
FROM_ENVIRONMENT = "environment"
FROM_STORED_LOGIN = "stored login"

API_KEY_ENV = "RUNTOOLS_API_KEY"

# Enough of a secret for a person to recognise it ("rt_live_4fQ…"), as in keyPrefix.
_VISIBLE_CHARS = 11


def _mask(secret: str) -> str:
    return secret[:_VISIBLE_CHARS] + "…"


@dataclass(frozen=True, repr=False)
class ApiKeyCredential:
    """An ``rt_live_`` / ``rt_test_`` key, sent as ``X-API-Key``."""

    key: str
    source: str = field(default=FROM_ARGUMENT, compare=False)
    """``"argument"``, ``"environment"`` (``RUNTOOLS_API_KEY``) or ``"stored login"``."""

    def auth_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def __repr__(self) -> str:
        return f"ApiKeyCredential({_mask(self.key)!r})"


@dataclass(frozen=True, repr=False)
class AccessTokenCredential:
    """A session access token, sent as ``Authorization: Bearer``."""

    token: str
    source: str = field(default=FROM_ARGUMENT, compare=False)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def __repr__(self) -> str:
        return f"AccessTokenCredential({_mask(self.token)!r})"


class StoredSessionCredential:
    """A session stored by ``runtools login``, refreshed by the client as it nears expiry.

    The client swaps in each new token pair (:meth:`adopt`) after saving it
    to the store, so every process sharing the login sees the latest pair.
    """

    source = FROM_STORED_LOGIN

    def __init__(self, login: StoredLogin, store: LoginStore) -> None:
        self.login = login
        self.store = store

    @property
    def access_token(self) -> str:
        assert self.login.access_token is not None
        return self.login.access_token

    @property
    def expires_at(self) -> datetime | None:
        return self.login.expires_at

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def adopt(self, login: StoredLogin) -> None:
        self.login = login

    def __repr__(self) -> str:
        return f"StoredSessionCredential({self.login.api_url!r}, {_mask(self.access_token)!r})"


Credential = ApiKeyCredential | AccessTokenCredential | StoredSessionCredential


def _checked(secret: str, source: str) -> str:
    """``secret`` if it can travel in an HTTP header; the error never repeats it.

    A stray newline or space (a key pasted from a file) would otherwise fail
    deep inside the HTTP stack, looking like a connection problem.
    """
    if not all("!" <= char <= "~" for char in secret):
        raise ValueError(
            f"The credential from {source} contains spaces, control or non-ASCII "
            "characters; check for a stray newline or quote."
        )
    return secret


def _load_stored_credentials(api_url: str, environ: Mapping[str, str]) -> Credential | None:
    """The login ``runtools login`` (or ``runtools auth set-key``) saved for ``api_url``."""
    store = LoginStore.from_environ(environ)
    login = store.get(api_url)
    if login is None:
        return None
    if login.type == "api_key" and login.api_key:
        return ApiKeyCredential(_checked(login.api_key, str(store.path)), source=FROM_STORED_LOGIN)
    return StoredSessionCredential(login, store)


def resolve_credential(
    *,
    api_key: str | None,
    access_token: str | None,
    environ: Mapping[str, str],
    api_url: str,
) -> Credential:
    """Pick the credential by argument, then environment, then stored login.

    Empty strings count as absent, so ``RUNTOOLS_API_KEY=`` in a shell does
    not shadow a stored login with a blank key.
    """
    if api_key and access_token:
        raise ValueError("Pass api_key= or access_token=, not both: a request carries one.")
    if api_key:
        return ApiKeyCredential(_checked(api_key, "api_key="))
    if access_token:
        return AccessTokenCredential(_checked(access_token, "access_token="))
    env_key = environ.get(API_KEY_ENV)
    if env_key:
        return ApiKeyCredential(_checked(env_key, API_KEY_ENV), source=FROM_ENVIRONMENT)
    stored = _load_stored_credentials(api_url, environ)
    if stored is not None:
        return stored
    raise MissingCredentialsError()
