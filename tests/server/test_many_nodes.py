"""Several server processes on one PostgreSQL (and Redis): one service to the caller.

A key created on node A works on node B; revoked on A, it is refused by B
within the bound; rate-limit counters are shared. Runs on the PostgreSQL
pass of the suite (``RUNTOOLS_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import json
import secrets
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.live_server import LiveServer, free_port, runtools
from support.secret_registry import SecretRegistry

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
BOUND_SECONDS = 0.1


@pytest.fixture
def cluster_env(server_env: dict[str, str], database_url: str | None) -> dict[str, str]:
    if database_url is None:
        pytest.skip("many nodes need PostgreSQL: set RUNTOOLS_TEST_DATABASE_URL")
    # A namespace of its own: parallel runs on the same Redis never meet.
    return {**server_env, "RUNTOOLS_NAMESPACE": f"t_{secrets.token_hex(6)}"}


def _own_sandbox_dir(path: Path) -> dict[str, str]:
    """A second node on this host keeps its sandboxes apart from the first's."""
    return {"RUNTOOLS_SANDBOX_STATE_DIR": str(path / "sandboxes")}


def _bootstrap(env: dict[str, str], registry: SecretRegistry) -> str:
    runtools("admin", "create-org", "acme", env=env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", "--role", "admin", env=env)
    runtools("admin", "set-plan", "acme", "enterprise", env=env)
    out = runtools(
        "admin", "create-key", "--org", "acme", "--user", "ada@example.com", "--name", "boot",
        "--json", env=env,
    )  # fmt: skip
    return str(registry.add(json.loads(out.stdout)["key"]))


@pytest.fixture
def nodes(
    request: pytest.FixtureRequest, cluster_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = dict(cluster_env)
    if request.param == "redis":
        env["RUNTOOLS_REDIS_URL"] = LOCAL_REDIS
    a = LiveServer(env={**env, "RUNTOOLS_SANDBOX_NODE": "node-a"}, log_path=tmp_path / "a.log")
    b = LiveServer(
        env={**env, "RUNTOOLS_SANDBOX_NODE": "node-b", **_own_sandbox_dir(tmp_path / "b")},
        log_path=tmp_path / "b.log",
        extra_args=("--workers", "2"),
    )
    yield a, b
    a.stop()
    b.stop()


def _me(node: LiveServer, key: str) -> httpx.Response:
    return httpx.get(f"{node.url}/v1/me", headers={"X-API-Key": key}, timeout=5)


def _refused_after(poll: httpx.Client, timeout: float = 5.0) -> float:
    """Seconds until ``poll``'s node refuses its key; one open connection, so a poll
    costs a request, not a connection (on a busy machine those dominated the time)."""
    started = time.perf_counter()
    while poll.get("/v1/me").status_code != 401:
        assert time.perf_counter() - started < timeout, "revocation never reached the node"
    return time.perf_counter() - started


@pytest.mark.slow
@pytest.mark.parametrize("nodes", ["redis", "postgres"], indirect=True)
def test_a_key_made_on_one_node_works_on_the_other_and_revocation_reaches_it_at_once(
    nodes: tuple[LiveServer, LiveServer],
    cluster_env: dict[str, str],
    secret_registry: SecretRegistry,
) -> None:
    a, b = nodes
    admin_key = _bootstrap(cluster_env, secret_registry)
    a.start()
    b.start()
    headers = {"X-API-Key": admin_key}
    delays = []
    for i in range(5):
        made = httpx.post(f"{a.url}/v1/api-keys", headers=headers, json={"name": f"k{i}"})
        key = secret_registry.add(made.json()["data"]["key"])
        for _ in range(4):  # both of B's workers verify and cache it
            assert _me(b, key).status_code == 200
        with httpx.Client(base_url=b.url, headers={"X-API-Key": key}, timeout=5) as poll:
            assert poll.get("/v1/me").status_code == 200  # connected, and cached there
            revoked = httpx.delete(
                f"{a.url}/v1/api-keys/{made.json()['data']['id']}", headers=headers
            )
            assert revoked.status_code == 200
            assert _me(a, key).status_code == 401  # the revoking node: the very next request
            delays.append(_refused_after(poll))
        for _ in range(4):  # and every worker of B
            assert _me(b, key).status_code == 401
    assert statistics.median(delays) < BOUND_SECONDS, delays


@pytest.mark.slow
@pytest.mark.parametrize("nodes", ["redis"], indirect=True)
def test_rate_limit_counters_are_shared_by_every_node(
    nodes: tuple[LiveServer, LiveServer],
    cluster_env: dict[str, str],
    secret_registry: SecretRegistry,
) -> None:
    a, b = nodes
    admin_key = _bootstrap(cluster_env, secret_registry)
    a.start()
    b.start()
    made = httpx.post(
        f"{a.url}/v1/api-keys",
        headers={"X-API-Key": admin_key},
        json={"name": "slow", "rateLimit": 4},
    )
    key = secret_registry.add(made.json()["data"]["key"])
    for node in (a, b, b, b, b):  # every worker has met Redis before the counted requests
        assert _me(node, admin_key).status_code == 200
    _clear_of_a_window_edge()
    answers = [_me(node, key) for node in (a, b, a, b, a, b)]
    fallbacks = [
        line
        for node in (a, b)
        for line in node.log_path.read_text().splitlines()
        if "counting per node" in line
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429, 429], fallbacks
    assert [r.headers["X-RateLimit-Remaining"] for r in answers[:4]] == ["3", "2", "1", "0"]
    assert len({r.headers["X-RateLimit-Reset"] for r in answers}) == 1


def _clear_of_a_window_edge(margin: float = 5.0) -> None:
    """Wait out the end of a one-minute window: counts restart when the next one opens."""
    into = time.time() % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.05)


@pytest.mark.slow
def test_a_scrape_counts_every_worker_of_the_node(
    cluster_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cluster_env, "RUNTOOLS_METRICS": "on"}
    node = LiveServer(env=env, log_path=tmp_path / "node.log", extra_args=("--workers", "2"))
    node.start()  # its readiness probe is one GET /healthz
    try:
        for _ in range(40):  # a connection each: the two workers share them
            assert httpx.get(f"{node.url}/healthz", timeout=5).status_code == 200
        counts = {_healthz_count(node) for _ in range(6)}  # whichever worker answers
    finally:
        node.stop()
    assert counts == {41.0}


def _healthz_count(node: LiveServer) -> float:
    text = httpx.get(f"{node.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("runtools_requests_total{") and 'route="/healthz"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no /healthz count in:\n{text}")


@pytest.mark.slow
def test_a_second_server_under_a_taken_node_name_refuses_to_start(
    cluster_env: dict[str, str], tmp_path: Path
) -> None:
    # Its clean stop would fail and reap the first one's sandboxes.
    env = {**cluster_env, "RUNTOOLS_SANDBOX_NODE": "node-a"}
    first = LiveServer(env=env, log_path=tmp_path / "first.log").start()
    try:
        second = runtools("serve", "--port", str(free_port()), env=env, check=False)
        assert second.returncode == 2
        assert "already runs as node 'node-a'" in second.stderr
        assert "RUNTOOLS_SANDBOX_NODE" in second.stderr
        assert httpx.get(f"{first.url}/healthz").status_code == 200
        other = LiveServer(
            env={**env, "RUNTOOLS_SANDBOX_NODE": "node-b", **_own_sandbox_dir(tmp_path / "b")},
            log_path=tmp_path / "other.log",
        )
        other.start().stop()  # another name on the same database is welcome
    finally:
        first.stop()


@pytest.mark.slow
@pytest.mark.parametrize("first_on", ["postgresql", "sqlite"])
def test_servers_sharing_a_sandbox_dir_refuse_rather_than_reap_each_other(
    cluster_env: dict[str, str], tmp_path: Path, first_on: str
) -> None:
    # One home, one server on PostgreSQL and one on SQLite: each would reap, on
    # start and on stop, the sandboxes it finds there that its database does not know.
    on_sqlite = {k: v for k, v in cluster_env.items() if k != "RUNTOOLS_DATABASE_URL"}
    first_env, second_env = (
        (cluster_env, on_sqlite) if first_on == "postgresql" else (on_sqlite, cluster_env)
    )
    first = LiveServer(env=first_env, log_path=tmp_path / "first.log").start()
    try:
        second = runtools("serve", "--port", str(free_port()), env=second_env, check=False)
        assert second.returncode == 2
        assert second.stderr.startswith("error: another runtools serve already uses ")
        assert "for its sandboxes" in second.stderr
        assert "RUNTOOLS_SANDBOX_STATE_DIR" in second.stderr
        assert httpx.get(f"{first.url}/healthz").status_code == 200
    finally:
        first.stop()
    # With sandboxes of its own, the second is welcome.
    LiveServer(
        env={**second_env, **_own_sandbox_dir(tmp_path / "second")},
        log_path=tmp_path / "second.log",
    ).start().stop()
