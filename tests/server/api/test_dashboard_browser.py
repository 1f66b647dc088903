"""The dashboard in a real browser: Debian's chromium driven by Playwright.

One browser for the module, a fresh context (cookies, storage) per test, the
real app served by uvicorn on a loopback socket. Keys the page shows are
used from the test with httpx, as a program would use them. Every page
visited passes an axe-core accessibility check (axe is vendored in
``tests/support/axe``, from the npm registry).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtools.server import operator
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp, serve

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
AXE = Path(__file__).parents[2] / "support" / "axe" / "axe.min.js"

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"Debian's chromium is not at {CHROMIUM} (scripts/setup dev installs it)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        # The system's browser, never one Playwright would download.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def site(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> Iterator[ServedApp]:
    settings = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    with serve(settings, secret_registry) as served:
        operator.create_org(served.runtime, "acme")
        for email, role in (("ada@example.com", "admin"), ("bob@example.com", "member")):
            operator.create_user(
                served.runtime,
                email,
                org_name="acme",
                role=role,
                password=PASSWORD,
                display_name=None,
            )
        yield served


@pytest.fixture
def page(browser: Any, site: ServedApp) -> Iterator[Any]:
    context = browser.new_context(base_url=site.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    opened = context.new_page()
    yield opened
    context.close()


def accessible(page: Any) -> None:
    """axe-core finds no violation on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target).join(' ')})`)"
    )
    assert violations == [], f"{page.url}: {violations}"


def sign_in(page: Any, email: str) -> None:
    page.goto("/dashboard")
    assert "/login" in page.url
    accessible(page)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/api-keys")


def me(url: str, key: str) -> int:
    return httpx.get(f"{url}/v1/me", headers={"X-API-Key": key}, timeout=10).status_code


def shown_secret(page: Any, registry: SecretRegistry) -> str:
    secret: str = page.locator("#new-secret").inner_text().strip()
    assert re.fullmatch(r"rt_live_\S+", secret)
    return registry.add(secret)


def test_a_key_from_creation_to_revocation(
    page: Any, site: ServedApp, secret_registry: SecretRegistry
) -> None:
    sign_in(page, "ada@example.com")
    accessible(page)
    page.get_by_role("link", name="Create an API key").click()
    accessible(page)
    page.get_by_label("Name").fill("ci deploys")
    page.get_by_label(re.compile(r"^sandbox:read ")).check()
    assert page.get_by_label("Expires").input_value() == "90d"  # the default
    page.get_by_role("button", name="Create key").click()

    panel = page.get_by_role("alert")
    assert "Store this key now" in panel.inner_text()
    first = shown_secret(page, secret_registry)
    accessible(page)
    page.get_by_role("button", name="Copy the key").click()
    page.get_by_text("Copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == first
    assert me(site.url, first) == 200

    page.reload()
    assert page.locator("#new-secret").count() == 0  # never shown again
    assert first not in page.content()
    page.get_by_role("link", name="ci deploys", exact=True).click()
    assert "api_key.created" in page.content()  # the key's own page, with its events
    accessible(page)
    page.get_by_role("link", name="Back to API keys").click()
    row = page.get_by_role("row", name=re.compile("ci deploys"))
    assert "sandbox:read" in row.inner_text()
    assert "active" in row.inner_text()

    # Rotating asks for the password, then offers a grace period; both keys then work.
    page.get_by_role("link", name="Rotate ci deploys").click()
    page.wait_for_url("**/dashboard/confirm-password**")
    accessible(page)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/rotate")
    accessible(page)
    page.get_by_label("Grace period for the old key").select_option("1h")
    page.get_by_role("button", name="Rotate “ci deploys”").click()
    second = shown_secret(page, secret_registry)
    assert second != first
    assert "keeps working for 1 hour" in page.get_by_role("alert").inner_text()
    assert me(site.url, first) == 200
    assert me(site.url, second) == 200
    assert "expiring" in page.get_by_role("row", name=re.compile(first[:12])).inner_text()

    # Revoking names the key, and the next request with it fails.
    page.get_by_role("row", name=re.compile(second[:12])).get_by_role("link", name="Revoke").click()
    accessible(page)
    assert "ci deploys" in page.get_by_role("heading", level=1).inner_text()
    page.get_by_role("button", name="Revoke “ci deploys”").click()
    page.get_by_role("status").filter(has_text="is revoked").wait_for()
    assert me(site.url, second) == 401

    page.get_by_role("link", name="Sessions").click()
    accessible(page)
    assert "(this browser)" in page.content()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login**")
    page.goto("/dashboard/api-keys")
    assert "/login" in page.url  # signed out: the session is gone


def test_a_member_sees_only_their_own_keys(
    page: Any, site: ServedApp, secret_registry: SecretRegistry
) -> None:
    issued, _org, _owner = operator.create_key(
        site.runtime,
        org_name="acme",
        email="ada@example.com",
        name="ada's deploy key",
        scopes=["*"],
        expires_in=None,
        is_test=False,
    )
    secret_registry.add(issued.secret)
    sign_in(page, "bob@example.com")
    assert "ada's deploy key" not in page.content()
    assert page.get_by_role("link", name=re.compile("every key")).count() == 0
    page.goto("/dashboard/api-keys?view=all")
    assert "ada's deploy key" not in page.content()
    # No admin pages: not in the navigation, and refused when asked for.
    assert page.get_by_role("link", name="Audit log").count() == 0
    assert page.goto("/dashboard/audit-log").status == 403
    page.goto("/dashboard/team")
    assert "ada@example.com" in page.content()
    assert page.get_by_role("button", name=re.compile("Make admin")).count() == 0
    accessible(page)
    page.goto("/dashboard/api-keys/new")
    assert page.get_by_label(re.compile(r"^admin:\*")).count() == 0  # not offered to a member
    assert page.get_by_label(re.compile(r"^sandbox:read ")).count() == 1
    accessible(page)


def test_forged_posts_and_frames_are_refused(
    page: Any, site: ServedApp, secret_registry: SecretRegistry
) -> None:
    sign_in(page, "ada@example.com")
    # Same origin, with the session's cookies but no CSRF token: refused, nothing made.
    forged = page.request.post(
        "/dashboard/api-keys",
        form={"name": "forged", "scopes": "sandbox:read", "expires": "30d"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "form expired" in forged.text()
    # Another site's form, posted in the same browser: SameSite=Strict keeps the session
    # cookie home, so it arrives signed out and is sent to the sign-in page.
    evil = "http://evil.test"
    html = {
        "/form": f'<form method="post" action="{site.url}/dashboard/api-keys">'
        '<input name="name" value="cross-site"><input name="scopes" value="sandbox:read">'
        "<button>go</button></form>",
    }
    page.route(
        f"{evil}/**",
        lambda route: route.fulfill(
            body=html[route.request.url[len(evil) :]], content_type="text/html"
        ),
    )
    page.goto(f"{evil}/form")
    page.get_by_role("button", name="go").click()
    page.wait_for_url(f"{site.url}/login**")
    page.goto("/dashboard/api-keys")
    assert "/dashboard/api-keys" in page.url  # still signed in here
    assert "forged" not in page.content()
    assert "cross-site" not in page.content()

    # Framed, even by a page of the same origin (another site's page framing a loopback
    # address is refused by chromium whatever the headers say): the browser refuses it
    # for frame-ancestors 'none' and X-Frame-Options.
    page.route(
        f"{site.url}/framing-probe",
        lambda route: route.fulfill(
            body='<iframe title="framed" src="/login"></iframe>', content_type="text/html"
        ),
    )
    page.goto(f"{site.url}/framing-probe")
    page.wait_for_timeout(500)
    framed = page.frames[-1]
    assert framed is not page.main_frame
    assert "Sign in" not in framed.content()
    assert page.frame_locator("iframe").get_by_label("Email").count() == 0
    # ... because of what every page sends:
    response = page.goto("/dashboard/api-keys")
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_ssh_keys_the_audit_log_team_sandboxes_and_device_pages_work_and_are_accessible(
    page: Any, site: ServedApp, tmp_path: Path, secret_registry: SecretRegistry
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    key_file = tmp_path / "id_ed25519.pub"
    key_file.write_text(line.decode() + " ada@laptop\n")

    sign_in(page, "ada@example.com")
    page.get_by_role("link", name="SSH Keys").click()
    accessible(page)
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("Or the public key file").set_input_files(str(key_file))
    page.get_by_role("button", name="Add key").click()
    page.get_by_role("status").filter(has_text="is added").wait_for()
    assert "ada@laptop" in page.get_by_role("row", name=re.compile("laptop")).inner_text()
    accessible(page)
    page.get_by_role("link", name="Remove laptop").click()
    accessible(page)
    page.get_by_role("button", name="Remove “laptop”").click()
    page.get_by_role("status").filter(has_text="is removed").wait_for()

    page.get_by_role("link", name="Audit log").click()
    assert "ssh_key.created" in page.content()
    accessible(page)
    page.get_by_label("Action").fill("ssh_key.deleted")
    page.get_by_role("button", name="Filter").click()
    assert "ssh_key.deleted" in page.content()
    assert "ssh_key.created" not in page.content()
    by = page.get_by_role("row", name=re.compile("ssh_key.deleted")).get_by_role("link")
    actor = by.inner_text()
    by.click()  # the actor's events, whatever they did
    assert page.get_by_label("Actor").input_value() == actor
    assert page.get_by_label("Action").input_value() == ""
    assert "ssh_key.created" in page.content()  # the same actor added it, too
    accessible(page)
    page.get_by_label("Actor").fill("key_nobody")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("No events match.").wait_for()

    page.get_by_role("link", name="Team").click()
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_role("button", name="Invite").click()
    token = page.locator("#new-secret").inner_text().strip()
    secret_registry.add(token)
    accessible(page)
    bob = page.get_by_role("row", name=re.compile("bob@example.com"))
    bob.get_by_role("button", name=re.compile("Make admin")).click()
    page.get_by_role("status").filter(has_text="bob@example.com is now admin").wait_for()
    page.reload()
    assert token not in page.content()

    page.get_by_role("link", name="Projects").click()
    page.get_by_label("Name", exact=True).fill("website")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("status").filter(has_text="is created").wait_for()
    accessible(page)

    page.get_by_role("link", name="Sandboxes").click()
    accessible(page)
    if os.geteuid() == 0:  # sandboxes need root (namespaces, cgroups)
        page.get_by_label("Name (optional)").fill("scratch")
        page.get_by_role("button", name="Create sandbox").click()
        # With the page's script the output streams in place (no reload).
        page.get_by_label(re.compile("^Command")).fill("echo hello; sleep 0.3; echo again >&2")
        page.get_by_role("button", name="Run").click()
        page.get_by_text("Exit code 0 after").wait_for()
        assert page.locator("#live-stdout").inner_text().strip() == "hello"
        assert page.locator("#live-stderr").inner_text().strip() == "again"
        assert "/exec" not in page.url
        accessible(page)
        page.get_by_role("button", name="Destroy").click()
        page.get_by_role("status").filter(has_text="is destroyed").wait_for()

    page.goto("/device")
    accessible(page)
    page.goto("/dashboard/confirm-password")
    accessible(page)


def test_signing_in_with_the_identity_provider_and_being_refused_by_it(
    browser: Any, tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> None:
    from support.oidc_provider import CLIENT_ID, CLIENT_SECRET, Person, Provider

    with Provider().running() as provider:
        provider.person = Person(
            "alice-1",
            {"email": "alice@example.com", "email_verified": True, "org_id": "example-co"},
        )
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
            context = browser.new_context(base_url=served.url)
            page = context.new_page()
            page.goto("/dashboard")
            accessible(page)
            page.get_by_role("link", name="Sign in with Example ID").click()
            # The callback's page moves on by itself, to where the person was going.
            page.wait_for_url(re.compile(r"^[^?]*/dashboard/api-keys$"))
            for cookie in context.cookies():
                if cookie["name"] in ("rt_session", "rt_access"):
                    secret_registry.add(cookie["value"])
            assert "alice@example.com · example-co (member)" in page.content()
            accessible(page)
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url("**/login?signed_out=1")

            provider.deny = True
            page.get_by_role("link", name="Sign in with Example ID").click()
            refusal = page.get_by_role("alert")
            assert refusal.inner_text() == "Sign-in with Example ID was cancelled or denied."
            accessible(page)
            context.close()
