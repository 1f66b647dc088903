"""The dashboard over HTTP, as a browser without JavaScript uses it: forms, cookies, redirects.

The browser itself is in ``test_dashboard_browser.py``; these pin what an
attacker would probe: the headers, the cookies, CSRF, the once-only secret,
re-authentication, and whose keys a person sees.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants

PASSWORD = "correct horse battery staple"
SECRET = re.compile(r"rt_(?:live|test)_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def ada(tenants: Tenants) -> Member:
    return tenants.member("acme", "ada@example.com", "admin", password=PASSWORD)


@pytest.fixture
def bob(tenants: Tenants, ada: Member) -> Member:
    return tenants.member("acme", "bob@example.com", "member", password=PASSWORD)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def sign_in(client: TestClient, registry: SecretRegistry, email: str) -> str:
    """Sign in through the form; the dashboard's CSRF token."""
    login = client.get("/login?next=/dashboard/api-keys")
    signed_in = client.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf": _csrf(login.text),
            "next": "/dashboard/api-keys",
        },
        follow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text
    for name in ("rt_session", "rt_access"):
        registry.add(client.cookies[name])
    page = client.get("/dashboard/api-keys")
    assert page.status_code == 200
    return _csrf(page.text)


def create(
    client: TestClient, csrf: str, name: str, scopes: list[str], **extra: str
) -> httpx.Response:
    response: httpx.Response = client.post(
        "/dashboard/api-keys",
        data={"csrf": csrf, "name": name, "scopes": scopes, "expires": "30d", **extra},
        follow_redirects=False,
    )
    return response


def test_every_page_sends_the_security_headers(ada: Member, client: TestClient) -> None:
    pages = [client.get("/login")]
    sign_in(client, SecretRegistry(), ada.email)
    pages += [client.get(p) for p in ("/dashboard/api-keys", "/dashboard/api-keys/new")]
    pages.append(client.get("/dashboard/sessions"))
    for page in pages:
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "script-src 'self'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        assert "<script>" not in page.text
        assert "style=" not in page.text
    css = client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert client.get("/dashboard/static/../web.py").status_code == 404


def test_the_session_cookie_is_a_signed_reference_not_a_refresh_token(
    ada: Member, client: TestClient, runtime: Runtime, secret_registry: SecretRegistry
) -> None:
    sign_in(client, secret_registry, ada.email)
    reference = client.cookies["rt_session"]
    session_id, _, mac = reference.partition(".")
    assert session_id.startswith("ses_")
    assert len(mac) == 64
    # A forged signature is no session at all: back to the sign-in page.
    client.cookies.set("rt_session", f"{session_id}.{'0' * 64}")
    client.cookies.delete("rt_access")
    bounced = client.get("/dashboard/api-keys", follow_redirects=False)
    assert bounced.status_code == 303
    assert bounced.headers["location"].startswith("/login?next=")


def test_a_post_without_the_csrf_token_is_refused(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    sign_in(client, secret_registry, ada.email)
    for token in ("", "forged"):
        refused = create(client, token, "sneaky", ["sandbox:read"])
        assert refused.status_code == 403
        assert "form expired" in refused.text
    keys = ada.get("/v1/api-keys").json()["data"]
    assert [k["name"] for k in keys] == ["bootstrap"]
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403


def test_the_secret_is_shown_once_and_works(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    made = create(client, csrf, "ci <deploys>", ["sandbox:read"])
    assert made.status_code == 303
    assert made.headers["location"] == "/dashboard/api-keys"
    assert SECRET.search(made.text + str(made.headers)) is None  # not in the redirect
    shown = client.get("/dashboard/api-keys")
    found = SECRET.findall(shown.text)
    assert len(found) == 1, shown.text
    secret = secret_registry.add(found[0])
    assert "ci &lt;deploys&gt;" in shown.text
    assert "<deploys>" not in shown.text
    assert "It will not be shown again" in shown.text
    me = client.get("/v1/me", headers={"X-API-Key": secret})
    assert me.status_code == 200
    assert me.json()["data"]["credential"]["scopes"] == ["sandbox:read"]
    again = client.get("/dashboard/api-keys")
    assert SECRET.search(again.text) is None


def test_wide_scopes_and_rotation_ask_for_the_password_first(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    wide = create(client, csrf, "everything", ["*"])
    assert wide.status_code == 303
    assert wide.headers["location"].startswith("/dashboard/confirm-password?next=")
    assert len(ada.get("/v1/api-keys").json()["data"]) == 1  # nothing made yet
    rotate = client.get(f"/dashboard/api-keys/{ada.key_id}/rotate", follow_redirects=False)
    assert rotate.headers["location"].startswith("/dashboard/confirm-password")
    wrong = client.post(
        "/dashboard/confirm-password",
        data={"csrf": csrf, "password": "nope", "next": "/dashboard/api-keys/new"},
        follow_redirects=False,
    )
    assert wrong.status_code == 403
    confirmed = client.post(
        "/dashboard/confirm-password",
        data={"csrf": csrf, "password": PASSWORD, "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/dashboard/api-keys"  # never off-site
    assert create(client, csrf, "everything", ["*"]).headers["location"] == "/dashboard/api-keys"
    secret_registry.add(SECRET.findall(client.get("/dashboard/api-keys").text)[0])
    # The mark is the session's own: another session cannot use it.
    mark = client.cookies["rt_reauth"]
    other = TestClient(client.app)
    other_csrf = sign_in(other, secret_registry, ada.email)
    other.cookies.set("rt_reauth", mark)
    assert (
        create(other, other_csrf, "stolen mark", ["*"])
        .headers["location"]
        .startswith("/dashboard/confirm-password")
    )


def test_a_member_sees_only_their_own_keys_and_cannot_grant_admin_scopes(
    ada: Member, bob: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, bob.email)
    page = client.get("/dashboard/api-keys?view=all")
    assert "bob@example.com" in page.text
    assert ada.key_id not in page.text  # ada's key is not listed, even asking for all
    form = client.get("/dashboard/api-keys/new").text
    assert 'value="sandbox:read"' in form
    assert 'value="admin:*"' not in form
    assert 'value="auth:verify"' not in form
    refused = create(client, csrf, "admin", ["admin:*"])
    assert refused.status_code in (303, 403)
    assert client.get(f"/dashboard/api-keys/{ada.key_id}/revoke").status_code == 404
    stolen = client.post(f"/dashboard/api-keys/{ada.key_id}/revoke", data={"csrf": csrf})
    assert stolen.status_code == 404
    assert ada.get("/v1/me").status_code == 200


def test_signing_out_revokes_the_session(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    access = client.cookies["rt_access"]
    reference = client.cookies["rt_session"]
    out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"].startswith("/login")
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {access}"}).status_code == 401
    client.cookies.set("rt_session", reference)  # a copy kept from before is dead too
    assert client.get("/dashboard/api-keys", follow_redirects=False).status_code == 303


def test_a_flash_is_its_sessions_alone_and_taken_once(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    assert create(client, csrf, "once", ["sandbox:read"]).status_code == 303
    reference = client.cookies["rt_flash"]
    other = TestClient(client.app)
    sign_in(other, secret_registry, ada.email)
    other.cookies.set("rt_flash", reference)
    assert SECRET.search(other.get("/dashboard/api-keys").text) is None
    secret_registry.add(SECRET.findall(client.get("/dashboard/api-keys").text)[0])
    client.cookies.set("rt_flash", reference)  # the same reference again: gone
    assert SECRET.search(client.get("/dashboard/api-keys").text) is None


def test_revoking_from_the_dashboard_ends_the_key(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    confirm = client.get(f"/dashboard/api-keys/{ada.key_id}/revoke")
    assert confirm.status_code == 200
    assert "bootstrap" in confirm.text  # the confirmation names the key
    done = client.post(f"/dashboard/api-keys/{ada.key_id}/revoke", data={"csrf": csrf})
    assert done.status_code == 200
    assert "is revoked" in done.text
    assert ada.get("/v1/me").status_code == 401


def _public_key(comment: str = "ada@laptop") -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{raw.decode()} {comment}"


def test_ssh_keys_are_added_by_paste_or_file_and_removed(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    pasted = client.post(
        "/dashboard/ssh-keys",
        data={"csrf": csrf, "name": "laptop", "public_key": _public_key()},
        files={"public_key_file": ("", b"")},
    )
    assert pasted.status_code == 200
    assert "is added" in pasted.text
    assert "SHA256:" in pasted.text
    uploaded = client.post(
        "/dashboard/ssh-keys",
        data={"csrf": csrf, "name": "desktop <b>"},
        files={"public_key_file": ("id_ed25519.pub", _public_key("me@desktop").encode())},
    )
    assert uploaded.status_code == 200
    assert "desktop &lt;b&gt;" in uploaded.text
    keys = ada.get("/v1/ssh-keys").json()["data"]
    assert sorted(k["name"] for k in keys) == ["desktop <b>", "laptop"]
    private = client.post(
        "/dashboard/ssh-keys",
        data={"csrf": csrf, "name": "oops", "public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"},
    )
    assert private.status_code == 400
    assert "BEGIN OPENSSH" not in private.text  # what was pasted is never echoed
    forged = client.post(f"/dashboard/ssh-keys/{keys[0]['id']}/remove", data={"csrf": "x"})
    assert forged.status_code == 403
    confirm = client.get(f"/dashboard/ssh-keys/{keys[0]['id']}/remove")
    assert keys[0]["fingerprint"] in confirm.text  # the confirmation names the key
    removed = client.post(f"/dashboard/ssh-keys/{keys[0]['id']}/remove", data={"csrf": csrf})
    assert removed.status_code == 200
    assert "is removed" in removed.text
    assert len(ada.get("/v1/ssh-keys").json()["data"]) == 1


def test_the_audit_log_is_for_admins(
    ada: Member, bob: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    sign_in(client, secret_registry, ada.email)
    log = client.get("/dashboard/audit-log")
    assert log.status_code == 200
    assert "session.created" in log.text
    only = client.get("/dashboard/audit-log?action=api_key.created")
    assert "session.created" not in only.text
    assert client.get("/dashboard/audit-log?since=not-a-time").status_code == 200
    member = TestClient(client.app)
    sign_in(member, secret_registry, bob.email)
    assert 'href="/dashboard/audit-log"' not in member.get("/dashboard/api-keys").text
    refused = member.get("/dashboard/audit-log")
    assert refused.status_code == 403
    assert "session.created" not in refused.text


def test_an_admin_filters_the_audit_log_by_actor_and_pages_through_it(
    ada: Member, bob: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    ada.create_key(secret_registry, name="ada's own")
    for n in range(51):
        bob.create_key(secret_registry, name=f"bob's {n}")
    sign_in(client, secret_registry, ada.email)

    def actors(page: str) -> list[str]:
        return re.findall(r'actor=([^"&]+)"', page)

    first = client.get("/dashboard/audit-log", params={"actor": bob.key_id})
    assert first.status_code == 200
    assert f'value="{bob.key_id}"' in first.text  # the form shows the filter in force
    assert set(actors(first.text)) == {bob.key_id}
    assert len(re.findall(r"<code>api_key.created</code>", first.text)) == 50
    older = re.search(r'<a href="([^"]+)">Older events</a>', first.text)
    assert older, first.text
    assert f"actor={bob.key_id}" in older.group(1)  # the next page keeps the filter
    rest = client.get(older.group(1).replace("&amp;", "&"))
    assert set(actors(rest.text)) == {bob.key_id}
    assert len(re.findall(r"<code>api_key.created</code>", rest.text)) == 1
    assert "Older events" not in rest.text

    mine = client.get("/dashboard/audit-log", params={"actor": ada.key_id, "action": ""})
    assert set(actors(mine.text)) == {ada.key_id}
    nobody = client.get("/dashboard/audit-log", params={"actor": "key_nobody"})
    assert "No events match." in nobody.text
    assert client.get("/dashboard/audit-log", params={"actor": "x" * 41}).status_code == 400

    member = TestClient(client.app)
    sign_in(member, secret_registry, bob.email)
    refused = member.get("/dashboard/audit-log", params={"actor": bob.key_id})
    assert refused.status_code == 403
    assert bob.key_id not in refused.text


def test_signing_out_everywhere_else_and_switching_organization(
    ada: Member, tenants: Tenants, client: TestClient, secret_registry: SecretRegistry
) -> None:
    from runtools.server import operator

    operator.create_org(tenants.runtime, "globex")
    operator.create_user(
        tenants.runtime,
        ada.email,
        org_name="globex",
        role="member",
        password=None,
        display_name=None,
    )
    other = TestClient(client.app)
    sign_in(other, secret_registry, ada.email)
    csrf = sign_in(client, secret_registry, ada.email)
    page = client.get("/dashboard/sessions").text
    assert "Sign out everywhere else" in page
    done = client.post("/dashboard/sessions/revoke-others", data={"csrf": csrf})
    assert "1 session(s) revoked" in done.text
    assert other.get("/dashboard/api-keys", follow_redirects=False).status_code == 303
    assert client.get("/dashboard/api-keys").status_code == 200

    assert 'id="org-switch"' in page
    old = client.cookies["rt_session"]
    switched = client.post(
        "/dashboard/switch-org", data={"csrf": csrf, "org": "globex"}, follow_redirects=False
    )
    assert switched.status_code == 303
    secret_registry.add(client.cookies["rt_session"])
    secret_registry.add(client.cookies["rt_access"])
    assert client.cookies["rt_session"] != old
    keys = client.get("/dashboard/api-keys")
    assert '<option value="globex" selected>' in keys.text
    assert "(member)" in keys.text
    refused = client.post(
        "/dashboard/switch-org", data={"csrf": _csrf(keys.text), "org": "initech"}
    )
    assert refused.status_code == 403


def test_the_table_filters_by_status_and_a_key_can_name_a_project(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    project = ada.post("/v1/projects", json={"name": "website"}).json()["data"]
    form = client.get("/dashboard/api-keys/new").text
    assert "website" in form
    made = create(client, csrf, "site key", ["sandbox:read"], project=project["id"])
    assert made.status_code == 303
    secret_registry.add(SECRET.findall(client.get("/dashboard/api-keys").text)[0])
    keys = {k["name"]: k for k in ada.get("/v1/api-keys").json()["data"]}
    assert keys["site key"]["projectId"] == project["id"]
    client.post(f"/dashboard/api-keys/{ada.key_id}/revoke", data={"csrf": csrf})
    revoked = client.get("/dashboard/api-keys?status=revoked").text
    assert "bootstrap" in revoked
    assert "site key" not in revoked
    active = client.get("/dashboard/api-keys?status=active").text
    assert "site key" in active
    assert "<td>website</td>" in active  # the project by its name
    assert ">bootstrap<" not in active


def test_cookies_are_secure_when_served_over_https(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    https = TestClient(client.app, base_url="https://testserver")
    login = https.get("/login")
    assert "secure" in login.headers["set-cookie"].lower()
    signed_in = https.post(
        "/login",
        data={"email": ada.email, "password": PASSWORD, "csrf": _csrf(login.text)},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    cookies = signed_in.headers.get_list("set-cookie")
    for name in ("rt_session", "rt_access"):
        cookie = next(c for c in cookies if c.startswith(name + "="))
        secret_registry.add(cookie.split(";")[0].split("=", 1)[1])
        attributes = [a.strip().lower() for a in cookie.split(";")]
        assert "secure" in attributes
        assert "httponly" in attributes
        assert "samesite=strict" in attributes
        assert "path=/" in attributes


def test_admins_manage_the_team_and_members_only_see_it(
    ada: Member, bob: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    member = TestClient(client.app)
    member_csrf = sign_in(member, secret_registry, bob.email)
    seen = member.get("/dashboard/team")
    assert seen.status_code == 200
    assert "ada@example.com" in seen.text
    assert "Invite someone" not in seen.text
    assert 'action="/dashboard/team/members/' not in seen.text
    for path, data in (
        ("/dashboard/team/invitations", {"email": "mallory@example.com", "role": "admin"}),
        (f"/dashboard/team/members/{bob.user_id}/role", {"role": "admin"}),
        (f"/dashboard/team/members/{ada.user_id}/remove", {}),
    ):
        refused = member.post(path, data={"csrf": member_csrf, **data})
        assert refused.status_code == 403, path
    assert member.get(f"/dashboard/team/members/{ada.user_id}/remove").status_code == 403

    csrf = sign_in(client, secret_registry, ada.email)
    invited = client.post(
        "/dashboard/team/invitations",
        data={"csrf": csrf, "email": "carol@example.com", "role": "member"},
        follow_redirects=False,
    )
    assert invited.status_code == 303
    shown = client.get("/dashboard/team").text
    token = re.search(r'<code id="new-secret"[^>]*>([^<]+)</code>', shown)
    assert token
    secret_registry.add(token.group(1))
    assert token.group(1) not in client.get("/dashboard/team").text  # shown once
    pending = ada.get(f"/v1/organizations/{ada.org_id}/invitations").json()["data"]
    assert [i["email"] for i in pending] == ["carol@example.com"]
    revoked = client.post(
        f"/dashboard/team/invitations/{pending[0]['id']}/revoke", data={"csrf": csrf}
    )
    assert "is revoked" in revoked.text

    promoted = client.post(
        f"/dashboard/team/members/{bob.user_id}/role", data={"csrf": csrf, "role": "admin"}
    )
    assert "bob@example.com is now admin" in promoted.text
    demoted = client.post(
        f"/dashboard/team/members/{bob.user_id}/role", data={"csrf": csrf, "role": "member"}
    )
    assert "bob@example.com is now member" in demoted.text
    confirm = client.get(f"/dashboard/team/members/{bob.user_id}/remove")
    assert "bob@example.com" in confirm.text  # the confirmation names the member
    removed = client.post(f"/dashboard/team/members/{bob.user_id}/remove", data={"csrf": csrf})
    assert "is no longer a member" in removed.text
    assert bob.get("/v1/me").status_code == 401  # bob's key here stops working


def test_the_pages_count_against_the_sessions_rate_limit(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    sign_in(client, secret_registry, ada.email)
    statuses = [client.get("/dashboard/sessions").status_code for _ in range(60)]
    assert statuses.count(200) == 59  # the free plan's 60 a minute, one spent signing in
    refused = client.get("/dashboard/sessions")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "Rate limit of 60 requests per minute" in refused.text
    assert "frame-ancestors 'none'" in refused.headers["content-security-policy"]


def test_the_key_table_pages_and_keeps_its_filters(
    ada: Member,
    client: TestClient,
    secret_registry: SecretRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtools.server.api.dashboard import keys

    monkeypatch.setattr(keys, "PAGE", 2)
    for name in ("key one", "key two", "key three"):
        ada.create_key(secret_registry, name=name, scopes=["sandbox:read"])
    sign_in(client, secret_registry, ada.email)
    page = client.get("/dashboard/api-keys?status=active").text
    assert "key three" in page
    assert "key two" in page
    assert "key one" not in page
    older = re.search(r'<a href="([^"]+)">Older keys</a>', page)
    assert older
    assert "status=active" in older.group(1)
    rest = client.get(older.group(1).replace("&amp;", "&")).text
    assert "key one" in rest
    assert "key three" not in rest


def test_the_expiry_picker_follows_the_organizations_key_policy(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    assert 'value="never"' in client.get("/dashboard/api-keys/new").text
    policy = f"/v1/organizations/{ada.org_id}/policy"
    assert ada.patch(policy, json={"maxKeyLifetime": "30d"}).status_code == 200
    form = client.get("/dashboard/api-keys/new").text
    assert re.findall(
        r'<option value="(\w+)"', form.split('id="expires"')[1].split("</select>")[0]
    ) == ["30d"]
    assert "at most 30d" in form
    assert ada.patch(policy, json={"maxKeyLifetime": "7d"}).status_code == 200
    form = client.get("/dashboard/api-keys/new").text
    assert 'value="7d" selected' in form
    made = create(client, csrf, "short", ["sandbox:read"], expires="7d")
    assert made.status_code == 303
    secret_registry.add(SECRET.findall(client.get("/dashboard/api-keys").text)[0])
    refused = client.post(
        "/dashboard/api-keys",
        data={"csrf": csrf, "name": "forever", "scopes": ["sandbox:read"], "expires": "never"},
    )
    assert refused.status_code == 403
    assert "policy" in refused.text


def test_admins_manage_projects_and_members_only_list_them(
    ada: Member, bob: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    csrf = sign_in(client, secret_registry, ada.email)
    made = client.post("/dashboard/projects", data={"csrf": csrf, "name": "  web <site> "})
    assert made.status_code == 200
    assert "Project “web &lt;site&gt;” is created" in made.text
    project = next(p for p in ada.get("/v1/projects").json()["data"] if not p["isDefault"])
    renamed = client.post(
        f"/dashboard/projects/{project['id']}/rename", data={"csrf": csrf, "name": "website"}
    )
    assert "now called “website”" in renamed.text

    member = TestClient(client.app)
    member_csrf = sign_in(member, secret_registry, bob.email)
    listed = member.get("/dashboard/projects").text
    assert "website" in listed
    assert "Create a project" not in listed
    for path in (
        "/dashboard/projects",
        f"/dashboard/projects/{project['id']}/rename",
        f"/dashboard/projects/{project['id']}/delete",
    ):
        assert member.post(path, data={"csrf": member_csrf, "name": "x"}).status_code == 403
    assert member.get(f"/dashboard/projects/{project['id']}/delete").status_code == 403

    assert "moves its API keys" in client.get(f"/dashboard/projects/{project['id']}/delete").text
    deleted = client.post(f"/dashboard/projects/{project['id']}/delete", data={"csrf": csrf})
    assert "is deleted" in deleted.text
    assert [p["name"] for p in ada.get("/v1/projects").json()["data"]] == ["Default"]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "/\t/evil.example/",
        "/\\evil.example/",
        "/\n/evil.example",
        "https://evil.example/",
    ],
)
def test_signing_in_never_redirects_off_site(
    ada: Member, client: TestClient, secret_registry: SecretRegistry, target: str
) -> None:
    login = client.get("/login")
    signed_in = client.post(
        "/login",
        data={"email": ada.email, "password": PASSWORD, "csrf": _csrf(login.text), "next": target},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    secret_registry.add(client.cookies["rt_session"])
    secret_registry.add(client.cookies["rt_access"])
    assert signed_in.headers["location"] == "/device"


def test_a_keys_page_shows_its_use_and_events_to_whoever_may_see_it(
    ada: Member, bob: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    assert ada.get("/v1/me").status_code == 200
    csrf = sign_in(client, secret_registry, ada.email)
    page = client.get(f"/dashboard/api-keys/{ada.key_id}")
    assert page.status_code == 200
    assert "bootstrap" in page.text
    assert "api_key.created" in page.text
    assert "Use, the last 14 days" in page.text
    assert SECRET.search(page.text) is None  # never the secret
    client.post(f"/dashboard/api-keys/{ada.key_id}/revoke", data={"csrf": csrf})
    assert "api_key.revoked" in client.get(f"/dashboard/api-keys/{ada.key_id}").text
    member = TestClient(client.app)
    sign_in(member, secret_registry, bob.email)
    assert member.get(f"/dashboard/api-keys/{ada.key_id}").status_code == 404
