"""Signing in to the dashboard with the external OIDC issuer, against a real provider.

The provider (``support.oidc_provider``) is Authlib's server on a loopback
socket; the app is served by uvicorn; the browser is an httpx client keeping
cookies and following redirects, as a browser would without JavaScript.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey
from sqlalchemy import select

from runtools.server.settings import Settings
from runtools.server.store.models import AuditEvent
from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, Person, Provider
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp, serve

ALICE = Person(
    "alice-1",
    {
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice",
        "org_id": "example-co",
        "role": "admin",
    },
)


@pytest.fixture(autouse=True)
def _no_wire_logs() -> Iterator[None]:
    """httpcore logs response headers at DEBUG: the test browser's Set-Cookie would be logged."""
    wire = logging.getLogger("httpcore")
    level = wire.level
    wire.setLevel(logging.INFO)
    yield
    wire.setLevel(level)


@pytest.fixture
def provider() -> Iterator[Provider]:
    with Provider().running() as running:
        running.person = ALICE
        yield running


@pytest.fixture
def site(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry, provider: Provider
) -> Iterator[ServedApp]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        oidc_issuer=provider.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_display_name="Example ID",
        _env_file=None,
    )
    with serve(settings, secret_registry) as served:
        provider.redirect_uris = [served.url + "/login/oidc/callback"]
        yield served


@pytest.fixture
def browser(site: ServedApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, follow_redirects=True, timeout=20) as client:
        yield client


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def start(
    browser: httpx.Client, next: str = "/dashboard", *, follow_redirects: bool = True
) -> httpx.Response:
    """Follow "Sign in with Example ID" on the sign-in page."""
    page = browser.get("/login", params={"next": next})
    assert page.status_code == 200
    link = re.search(
        r'<a class="button secondary" href="([^"]+)">Sign in with Example ID</a>', page.text
    )
    assert link, page.text
    target = link.group(1).replace("&amp;", "&")
    response: httpx.Response = browser.get(target, follow_redirects=follow_redirects)
    return response


def test_signing_in_with_the_issuer_starts_a_dashboard_session(
    site: ServedApp, provider: Provider, browser: httpx.Client, secret_registry: SecretRegistry
) -> None:
    done = start(browser, next="/dashboard/audit-log")
    assert done.status_code == 200, done.text
    assert "You are signed in." in done.text
    hops = [(r.status_code, str(r.url)) for r in done.history]
    assert [h[0] for h in hops] == [303, 302]  # ours to the provider, the provider's back
    assert hops[1][1].startswith(f"{provider.url}/authorize?")
    asked = parse_qs(urlsplit(hops[1][1]).query)
    assert asked["client_id"] == [CLIENT_ID]
    assert asked["response_type"] == ["code"]
    assert asked["code_challenge_method"] == ["S256"]  # PKCE, which the provider requires
    assert set(asked["scope"][0].split()) == {"openid", "email", "profile"}
    assert asked["state"][0]
    assert asked["nonce"][0]
    assert str(done.url).startswith(f"{site.url}/login/oidc/callback?")
    assert provider.token_requests == 1
    for name in ("rt_session", "rt_access"):
        secret_registry.add(browser.cookies[name])
    assert "rt_oidc" not in browser.cookies  # the pending sign-in is spent

    # The page moves on by itself to where the person was going; without a refresh, a link.
    assert 'http-equiv="refresh" content="0; url=/dashboard/audit-log"' in done.text
    log = browser.get("/dashboard/audit-log")
    assert log.status_code == 200  # the issuer said admin: the admins' page opens
    assert "alice@example.com · example-co (admin)" in log.text
    assert "session.created" in log.text
    sessions = browser.get("/dashboard/sessions")
    assert "(this browser)" in sessions.text

    # The same cookie session as a password's: signing out ends it.
    signed_out = browser.post("/logout", data={"csrf": _csrf(log.text)}, follow_redirects=False)
    assert signed_out.status_code == 303
    assert browser.get("/dashboard/audit-log", follow_redirects=False).status_code == 303


def test_the_issuer_decides_the_role_and_links_a_verified_address(
    site: ServedApp, provider: Provider, browser: httpx.Client, secret_registry: SecretRegistry
) -> None:
    provider.person = Person("bob-7", {**ALICE.claims, "email": "bob@example.com", "role": ""})
    assert start(browser).status_code == 200
    secret_registry.add(browser.cookies["rt_session"])
    assert "bob@example.com · example-co (member)" in browser.get("/dashboard/api-keys").text
    assert browser.get("/dashboard/audit-log").status_code == 403  # a member is no admin
    again = httpx.Client(base_url=site.url, follow_redirects=True, timeout=20)
    with again:
        assert start(again).status_code == 200  # the second time: the same user, linked
        secret_registry.add(again.cookies["rt_session"])
        assert "bob@example.com · example-co (member)" in again.get("/dashboard/api-keys").text


def refusals(site: ServedApp) -> list[str | None]:
    """The reasons of the failed sign-ins audited, oldest first (what an operator reads)."""
    site.runtime.flush()
    failed = select(AuditEvent).where(AuditEvent.action == "auth.sign_in_failed")
    with site.runtime.database.session() as session:
        return [e.reason for e in session.scalars(failed.order_by(AuditEvent.id))]


def _refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert message in response.text
    assert "Sign in with Example ID" in response.text  # back on the sign-in page, to retry
    assert "rt_session" not in response.cookies


def test_a_wrong_state_or_another_browsers_callback_is_refused(
    site: ServedApp, provider: Provider, browser: httpx.Client
) -> None:
    to_provider = start(browser, follow_redirects=False)
    assert to_provider.status_code == 303
    back = browser.get(to_provider.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    answer = parse_qs(callback.query)
    forged = {"code": answer["code"][0], "state": "not-the-state"}
    _refused(
        browser.get("/login/oidc/callback?" + urlencode(forged)),
        "was not for this browser",
    )
    # The real answer, carried to another browser (login CSRF), signs no one in there.
    with httpx.Client(base_url=site.url, timeout=20) as other:
        _refused(
            other.get(f"/login/oidc/callback?{callback.query}"),
            "was not started in this browser",
        )
    assert provider.token_requests == 0  # neither got as far as spending the code
    assert refusals(site) == ["wrong_state", "no_pending_sign_in"]


def test_denied_at_the_issuer_lands_on_the_sign_in_page(
    site: ServedApp, provider: Provider, browser: httpx.Client
) -> None:
    provider.deny = True
    _refused(start(browser), "Sign-in with Example ID was cancelled or denied.")
    assert refusals(site) == ["access_denied"]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"aud": "another-client"}, "wrong_audience", id="another audience"),
        pytest.param({"iss": "https://impostor.example"}, "wrong_issuer", id="another issuer"),
        pytest.param({"nonce": "another sign-in's"}, "wrong_nonce", id="another nonce"),
        pytest.param({"exp": int(time.time()) - 60}, "expired", id="expired"),
        pytest.param({"org_id": None}, "missing_org_claim", id="no organization"),
    ],
)
def test_an_id_token_that_does_not_verify_is_refused(
    site: ServedApp,
    provider: Provider,
    browser: httpx.Client,
    claims: dict[str, object],
    reason: str,
) -> None:
    provider.id_token_claims = claims
    _refused(start(browser), "The identity Example ID sent could not be verified.")
    assert provider.token_requests == 1
    assert refusals(site) == [reason]


def test_an_id_token_signed_with_an_unpublished_key_is_refused(
    site: ServedApp, provider: Provider, browser: httpx.Client
) -> None:
    provider.rogue_key = RSAKey.generate_key(2048, parameters={"kid": "provider-1"})
    _refused(start(browser), "The identity Example ID sent could not be verified.")
    assert refusals(site) == ["invalid_signature_or_claims"]


def test_an_unreachable_issuer_is_said_so(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        oidc_issuer="http://127.0.0.1:9",
        oidc_client_id=CLIENT_ID,
        _env_file=None,
    )
    with serve(settings, secret_registry) as served, httpx.Client(base_url=served.url) as http:
        page = http.get("/login")
        assert "Sign in with 127.0.0.1:9" in page.text
        refused = http.get("/login/oidc")
        assert refused.status_code == 503
        assert "127.0.0.1:9 cannot be reached just now" in refused.text


def test_without_a_client_there_is_no_button(client: TestClient) -> None:
    page = client.get("/login")
    assert "Sign in with" not in page.text
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?state=x&code=y").status_code == 404
