"""Fixtures for SDK tests: a wire-contract server, in-process and on a real socket.

``asgi_app`` is the one seam: override it to run the same tests against
another ASGI app speaking the contract (the real service, for instance).
``server_url`` serves ``asgi_app`` with uvicorn on an ephemeral
127.0.0.1 port; ``client`` and ``async_client`` are SDK clients pointed at
it, the async one both in-process (``httpx.ASGITransport``) and over the
socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from runtools import AsyncRunTools, RunTools
from support.secret_registry import SecretRegistry

from .fake_server import FakeRunTools

ASGI_BASE_URL = "http://runtools.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A developer's own settings and stored logins must not leak into what the tests see.
    for name in ("RUNTOOLS_API_KEY", "RUNTOOLS_API_URL", "RUNTOOLS_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNTOOLS_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def fake(secret_registry: SecretRegistry) -> FakeRunTools:
    return FakeRunTools(on_secret=secret_registry.add)


@pytest.fixture
def asgi_app(fake: FakeRunTools) -> Starlette:
    return fake.app()


@pytest.fixture
def api_key(fake: FakeRunTools) -> str:
    return fake.api_key


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread owns signals
        pass


@pytest.fixture
def server_url(asgi_app: Starlette) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        asgi_app, lifespan="off", log_level="warning", timeout_graceful_shutdown=1
    )
    server = _ThreadedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def client(server_url: str, api_key: str) -> Iterator[RunTools]:
    with RunTools(api_key=api_key, base_url=server_url) as rt:
        yield rt


@pytest.fixture(params=["asgi", "socket"])
async def async_client(
    request: pytest.FixtureRequest, asgi_app: Starlette, api_key: str
) -> AsyncIterator[AsyncRunTools]:
    if request.param == "asgi":
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(transport=transport) as http:
            rt = AsyncRunTools(api_key=api_key, base_url=ASGI_BASE_URL, http_client=http)
            async with rt:
                yield rt
    else:
        url = request.getfixturevalue("server_url")
        async with AsyncRunTools(api_key=api_key, base_url=url) as rt:
            yield rt
