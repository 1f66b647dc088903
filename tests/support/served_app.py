"""The real app served by uvicorn on a 127.0.0.1 socket, in a thread of the test process.

Real HTTP and the real lifespan (sandbox reconciliation, idle pausing),
without a subprocess per test; tenants are created through the app's own
runtime, as an operator would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from runtools.server import operator
from runtools.server.app import create_app, runtime_of
from runtools.server.runtime import Runtime
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread owns signals
        pass


@dataclass
class Caller:
    """A member of an org with an API key and an HTTP client that sends it."""

    org: str
    email: str
    role: str
    key: str
    user_id: str
    http: httpx.Client

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.put(url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.patch(url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(url, **kwargs)

    def stream(
        self, method: str, url: str, **kwargs: Any
    ) -> AbstractContextManager[httpx.Response]:
        return self.http.stream(method, url, **kwargs)


@dataclass
class ServedApp:
    app: FastAPI
    url: str
    registry: SecretRegistry
    _orgs: set[str] = field(default_factory=set)
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def runtime(self) -> Runtime:
        return runtime_of(self.app)

    def caller(
        self,
        org: str = "acme",
        email: str = "ada@example.com",
        role: str = "admin",
        scopes: list[str] | None = None,
    ) -> Caller:
        if org not in self._orgs:
            operator.create_org(self.runtime, org)
            self._orgs.add(org)
        try:
            joined = operator.create_user(
                self.runtime, email, org_name=org, role=role, password=None, display_name=None
            )
            user_id = joined.user.id
        except Exception:  # the user exists: another key for them
            user_id = ""
        issued, _org, owner = operator.create_key(
            self.runtime,
            org_name=org,
            email=email,
            name="test",
            scopes=scopes or ["*"],
            expires_in=None,
            is_test=False,
        )
        self.registry.add(issued.secret)
        http = httpx.Client(base_url=self.url, headers={"X-API-Key": issued.secret}, timeout=60)
        self._clients.append(http)
        return Caller(org, email, role, issued.secret, user_id or owner.id, http)

    def close(self) -> None:
        for client in self._clients:
            client.close()


@contextmanager
def serve(settings: Settings, registry: SecretRegistry) -> Iterator[ServedApp]:
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=5)
    server = _ThreadedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    served = ServedApp(app, f"http://127.0.0.1:{port}", registry)
    try:
        yield served
    finally:
        served.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
