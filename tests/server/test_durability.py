"""A created key and a revocation survive ``kill -9`` of the server."""

from __future__ import annotations

import httpx

from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry


def _bootstrap(env: dict[str, str], registry: SecretRegistry) -> str:
    runtools("admin", "create-org", "acme", env=env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", "--role", "admin", env=env)
    import json

    out = runtools(
        "admin",
        "create-key",
        "--org",
        "acme",
        "--user",
        "ada@example.com",
        "--name",
        "boot",
        "--json",
        env=env,
    )
    key: str = json.loads(out.stdout)["key"]
    return registry.add(key)


def test_created_key_and_revocation_survive_kill_9(
    live_server: LiveServer, server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    admin_key = _bootstrap(server_env, secret_registry)
    live_server.start()
    headers = {"X-API-Key": admin_key}
    created = httpx.post(
        f"{live_server.url}/v1/api-keys", headers=headers, json={"name": "survivor"}
    ).json()["data"]
    doomed = httpx.post(
        f"{live_server.url}/v1/api-keys", headers=headers, json={"name": "doomed"}
    ).json()["data"]
    secret_registry.add(created["key"])
    secret_registry.add(doomed["key"])
    revoked = httpx.delete(f"{live_server.url}/v1/api-keys/{doomed['id']}", headers=headers)
    assert revoked.status_code == 200
    live_server.kill_hard()

    live_server.start()
    me = httpx.get(f"{live_server.url}/v1/me", headers={"X-API-Key": created["key"]})
    assert me.status_code == 200
    assert me.json()["data"]["credential"]["name"] == "survivor"
    gone = httpx.get(f"{live_server.url}/v1/me", headers={"X-API-Key": doomed["key"]})
    assert gone.status_code == 401


def test_a_servers_logs_hold_no_secret(
    live_server: LiveServer, server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    """Debug-level logs of a real server over a key's whole life name no secret."""
    admin_key = _bootstrap(server_env, secret_registry)
    live_server.start()
    base, headers = live_server.url, {"X-API-Key": admin_key}
    key = httpx.post(f"{base}/v1/api-keys", headers=headers, json={"name": "k"}).json()["data"]
    secrets = [admin_key, key["key"]]
    httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {key['key']}"})
    rotated = httpx.post(f"{base}/v1/api-keys/{key['id']}/rotate", headers=headers, json={}).json()[
        "data"
    ]
    secrets.append(rotated["key"])
    httpx.get(f"{base}/v1/me", headers={"X-API-Key": key["key"]})  # revoked now
    httpx.get(f"{base}/v1/me", headers={"X-API-Key": key["key"][:-2] + "zz"})  # malformed
    httpx.post(f"{base}/v1/api-keys", headers=headers, content=b'{"name": "' + key["key"].encode())
    for secret in secrets:
        secret_registry.add(secret)
    live_server.stop()
    log = live_server.log_path.read_text()
    assert '"route": "/v1/me"' in log  # the access log was on
    for secret in secrets:
        assert secret not in log
        assert secret[12:] not in log
