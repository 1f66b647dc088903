"""Twenty clients refreshing one token at once over real HTTP: one successor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry

PASSWORD = "correct horse battery staple"


def test_twenty_concurrent_refreshes_yield_exactly_one_successor(
    live_server: LiveServer, server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    runtools("admin", "create-org", "acme", env=server_env)
    runtools(
        "admin",
        "create-user",
        "ada@example.com",
        "--org",
        "acme",
        "--password-stdin",
        env=server_env,
        stdin=PASSWORD,
    )
    live_server.start()
    login = httpx.post(
        f"{live_server.url}/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    ).json()["data"]
    secret_registry.add(login["accessToken"])
    refresh = secret_registry.add(login["refreshToken"])

    def attempt(_: int) -> httpx.Response:
        return httpx.post(
            f"{live_server.url}/v1/auth/refresh", json={"refreshToken": refresh}, timeout=30
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(attempt, range(20)))
    assert {r.status_code for r in responses} == {200}
    successors = {r.json()["data"]["refreshToken"] for r in responses}
    for response in responses:
        secret_registry.add(response.json()["data"]["accessToken"])
    assert len(successors) == 1
    successor = secret_registry.add(successors.pop())
    # The session is intact: the one successor works, and the chain goes on.
    following = httpx.post(f"{live_server.url}/v1/auth/refresh", json={"refreshToken": successor})
    assert following.status_code == 200
    secret_registry.add(following.json()["data"]["refreshToken"])
    secret_registry.add(following.json()["data"]["accessToken"])
