"""Keeping a stored login alive: when to refresh it, and how to read the answer.

A stored session's access token lives minutes; its refresh token is single
use. The clients refresh shortly before expiry and once after a 401, always
holding the store's lock, and re-read the store first: if another process
already refreshed, its pair is adopted instead of spending the (now used)
refresh token again. The server also hands concurrent refreshes of one
token the same successor within a short grace, so a race between machines
sharing nothing but the login does not end the session.

No I/O here; the clients send and wait.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from runtools._base_client import Envelope
from runtools._exceptions import APIStatusError, make_status_error
from runtools._login_store import StoredLogin
from runtools._models import SessionTokens
from runtools._retry import parse_retry_after

__all__ = [
    "REFRESH_MARGIN",
    "login_ended_error",
    "needs_refresh",
    "refresh_request",
    "refreshed_login",
    "switched_login",
]

#: Refresh when less than this is left, so a request never leaves with a dying token.
REFRESH_MARGIN = timedelta(seconds=60)
REFRESH_PATH = "/v1/auth/refresh"


def needs_refresh(login: StoredLogin, now: datetime | None = None) -> bool:
    return login.seconds_left(now) < REFRESH_MARGIN.total_seconds()


def refresh_request(
    http: httpx.Client | httpx.AsyncClient,
    auth_url: str,
    login: StoredLogin,
    *,
    headers: dict[str, str],
    timeout: httpx.Timeout,
) -> httpx.Request:
    return http.build_request(
        "POST",
        auth_url + REFRESH_PATH,
        json={"refreshToken": login.refresh_token},
        headers=headers,
        timeout=timeout,
    )


def refreshed_login(
    previous: StoredLogin, envelope: Envelope, now: datetime | None = None
) -> StoredLogin:
    """``previous`` with the new pair from a ``/v1/auth/refresh`` response."""
    data = envelope.data if isinstance(envelope.data, dict) else {}
    access, refresh, expires_in = (
        data.get("accessToken"),
        data.get("refreshToken"),
        data.get("expiresIn"),
    )
    if not isinstance(access, str) or not isinstance(refresh, str):
        raise envelope._invalid("a refresh answer without accessToken and refreshToken")
    seconds = expires_in if isinstance(expires_in, int | float) else 0
    expires_at = (now or datetime.now(UTC)) + timedelta(seconds=seconds)
    return previous.with_tokens(access, refresh, expires_at)


def switched_login(
    previous: StoredLogin, tokens: SessionTokens, now: datetime | None = None
) -> StoredLogin:
    """``previous``, carried over to the session a switch of organization started."""
    expires_at = (now or datetime.now(UTC)) + timedelta(seconds=tokens.expires_in)
    return replace(
        previous.with_tokens(tokens.access_token, tokens.refresh_token, expires_at),
        session_id=tokens.session_id,
        org_id=tokens.org.id if tokens.org is not None else None,
        org_name=tokens.org.name if tokens.org is not None else None,
    )


def login_ended_error(response: httpx.Response, api_url: str) -> APIStatusError:
    """The error for a refresh the server refused: the session is over."""
    request_id = response.headers.get("x-request-id")
    return make_status_error(
        response,
        code="unauthorized",
        message=(
            f"The stored login for {api_url} has ended (signed out, revoked or expired); "
            "run `runtools login` again"
        ),
        request_id=request_id,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )
