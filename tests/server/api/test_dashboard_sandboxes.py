"""The dashboard's sandboxes: create, a console command's output shown once, pause, destroy.

Real sandboxes (root, namespaces), through the real app on a socket, driven as a
browser without JavaScript drives it: form posts and redirects with cookies.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from runtools.server import operator
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _client_headers_unlogged() -> Iterator[None]:
    """httpcore logs the headers it receives at DEBUG, Set-Cookie included: that is this
    test's client talking, not the server, whose logs must still hold no cookie."""
    client_log = logging.getLogger("httpcore")
    level = client_log.level
    client_log.setLevel(logging.INFO)
    yield
    client_log.setLevel(level)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def _browser(served: ServedApp, registry: SecretRegistry, email: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=served.url, timeout=60, follow_redirects=True)
    served._clients.append(browser)  # closed with the app
    login = browser.get("/login")
    page = browser.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf": _csrf(login.text),
            "next": "/dashboard/sandboxes",
        },
    )
    assert page.status_code == 200, page.text
    registry.add(browser.cookies["rt_session"])
    registry.add(browser.cookies["rt_access"])
    return browser, _csrf(page.text)


def test_a_sandbox_from_the_dashboard(served: ServedApp, secret_registry: SecretRegistry) -> None:
    operator.create_org(served.runtime, "acme")
    for email in ("ada@example.com", "bob@example.com"):
        operator.create_user(
            served.runtime,
            email,
            org_name="acme",
            role="member",
            password=PASSWORD,
            display_name=None,
        )
    browser, csrf = _browser(served, secret_registry, "ada@example.com")
    made = browser.post("/dashboard/sandboxes", data={"csrf": csrf, "name": "scratch"})
    assert made.status_code == 200, made.text
    assert "running" in made.text
    box = made.url.path.rsplit("/", 1)[1]

    ran = browser.post(
        f"/dashboard/sandboxes/{box}/exec",
        data={"csrf": csrf, "command": "echo '<b>hi</b>'; echo oops >&2; exit 3"},
    )
    assert ran.status_code == 200
    assert "&lt;b&gt;hi&lt;/b&gt;" in ran.text  # output is text, never markup
    assert "oops" in ran.text
    assert "Exit code <strong>3</strong>" in ran.text
    assert "Exit code" not in browser.get(f"/dashboard/sandboxes/{box}").text  # once

    forged = browser.post(f"/dashboard/sandboxes/{box}/exec", data={"command": "id"})
    assert forged.status_code == 403
    forged = browser.post(f"/dashboard/sandboxes/{box}/exec/stream", data={"command": "id"})
    assert forged.status_code == 403

    streamed = browser.post(
        f"/dashboard/sandboxes/{box}/exec/stream",
        data={"csrf": csrf, "command": "echo one; echo two >&2"},
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.headers["x-content-type-options"] == "nosniff"
    events = re.findall(r"event: (\w+)\ndata: ([^\n]*)", streamed.text)
    assert ("stdout", '{"data":"one\\n"}') in events
    assert ("stderr", '{"data":"two\\n"}') in events
    assert events[-1][0] == "exit"
    assert '"exitCode":0' in events[-1][1]

    other, other_csrf = _browser(served, secret_registry, "bob@example.com")
    assert other.get(f"/dashboard/sandboxes/{box}").status_code == 404
    stolen = other.post(
        f"/dashboard/sandboxes/{box}/exec", data={"csrf": other_csrf, "command": "id"}
    )
    assert stolen.status_code == 404
    assert "scratch" not in other.get("/dashboard/sandboxes").text

    paused = browser.post(f"/dashboard/sandboxes/{box}/pause", data={"csrf": csrf})
    assert "is paused" in paused.text
    assert "Resume" in paused.text
    gone = browser.post(f"/dashboard/sandboxes/{box}/destroy", data={"csrf": csrf})
    assert gone.url.path == "/dashboard/sandboxes"
    assert "is destroyed" in gone.text
