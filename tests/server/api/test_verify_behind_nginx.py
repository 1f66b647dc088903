"""The reverse-proxy check behind a real nginx (``auth_request``), in front of a tiny upstream.

nginx, the API (uvicorn on a socket) and the upstream each listen on a random
loopback port; nginx runs from a temporary prefix with its own configuration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from runtools.server.settings import Settings
from support.live_server import free_port
from support.secret_registry import SecretRegistry
from support.served_app import Caller, ServedApp, serve

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (scripts/setup dev installs nginx-light as root)"
)

CONFIG = """
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location /tools/ {{
      # Read by the check's subrequest, which shares the request's variables.
      set $runtools_required_scopes "tool:*";
      auth_request /_runtools_check;
      auth_request_set $runtools_org $upstream_http_x_runtools_org_id;
      auth_request_set $runtools_user $upstream_http_x_runtools_user_id;
      auth_request_set $runtools_scopes $upstream_http_x_runtools_scopes;
      proxy_set_header X-Runtools-Org-Id $runtools_org;
      proxy_set_header X-Runtools-User-Id $runtools_user;
      proxy_set_header X-Runtools-Scopes $runtools_scopes;
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location = /_runtools_check {{
      internal;
      proxy_pass http://127.0.0.1:{api}/v1/auth/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Runtools-Service-Key "{service_key}";
      proxy_set_header X-Runtools-Required-Scopes $runtools_required_scopes;
    }}
  }}
}}
"""


class _Upstream(BaseHTTPRequestHandler):
    """Answers with the X-Runtools-* headers it was sent, as JSON."""

    def do_GET(self) -> None:
        seen = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-runtools")}
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def api(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> Iterator[ServedApp]:
    settings = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    with serve(settings, secret_registry) as app:
        yield app


@pytest.fixture
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(tmp_path: Path, api: ServedApp, upstream: int) -> Iterator[str]:
    service = api.caller("platform", "proxy@platform.example", "member", scopes=["auth:verify"])
    assert NGINX is not None
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(
        CONFIG.format(
            prefix=prefix,
            port=port,
            upstream=upstream,
            api=api.url.rsplit(":", 1)[1],
            service_key=service.key,
        )
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            errors = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"nginx exited: {errors}")
        try:
            httpx.get(f"{url}/tools/", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_nginx_lets_a_good_key_through_naming_its_org_user_and_scopes(
    api: ServedApp, proxy: str, secret_registry: SecretRegistry
) -> None:
    ada: Caller = api.caller("acme", "ada@example.com", "admin")
    tools = ada.post("/v1/api-keys", json={"name": "tools", "scopes": ["tool:*"]}).json()["data"]
    secret_registry.add(tools["key"])
    # Headers a client forges are replaced by what the check said.
    forged = {"X-Runtools-Org-Id": "org_forged", "X-Runtools-Scopes": "*"}
    for credential in ({"X-API-Key": tools["key"]}, {"Authorization": f"Bearer {tools['key']}"}):
        passed = httpx.get(f"{proxy}/tools/run", headers={**credential, **forged}, timeout=30)
        assert passed.status_code == 200
        assert passed.json() == {
            "x-runtools-org-id": ada.http.get("/v1/me").json()["data"]["organization"]["id"],
            "x-runtools-user-id": ada.user_id,
            "x-runtools-scopes": "tool:*",
        }


def test_nginx_refuses_bad_missing_revoked_and_underscoped_credentials(
    api: ServedApp, proxy: str, secret_registry: SecretRegistry
) -> None:
    ada = api.caller("acme", "ada@example.com", "admin")
    reader = ada.post("/v1/api-keys", json={"name": "r", "scopes": ["sandbox:read"]}).json()["data"]
    doomed = ada.post("/v1/api-keys", json={"name": "d", "scopes": ["tool:*"]}).json()["data"]
    secret_registry.add(reader["key"])
    secret_registry.add(doomed["key"])
    url = f"{proxy}/tools/run"
    assert httpx.get(url, headers={"X-API-Key": doomed["key"]}, timeout=30).status_code == 200
    assert ada.delete(f"/v1/api-keys/{doomed['id']}").status_code == 200
    assert httpx.get(url, headers={"X-API-Key": doomed["key"]}, timeout=30).status_code == 401
    assert httpx.get(url, timeout=30).status_code == 401
    assert httpx.get(url, headers={"X-API-Key": "rt_live_nope"}, timeout=30).status_code == 401
    assert httpx.get(url, headers={"X-API-Key": reader["key"]}, timeout=30).status_code == 403
    # A client sending the proxy's header gets nothing from it: nginx sets its own.
    spoof = httpx.get(url, headers={"X-Runtools-Service-Key": reader["key"]}, timeout=30)
    assert spoof.status_code == 401
