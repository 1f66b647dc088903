"""Sandboxes across nodes: any node answers any sandbox call, and a lost node frees its own.

Real ``runtools serve`` processes on one PostgreSQL and Redis, real
sandboxes. Each node has its own sandbox state and uid range, as two hosts
would. Runs on the PostgreSQL pass of the suite.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from runtools import RunTools
from runtools.server.domain.node_mark import NodeMark, seal
from support.balancer import RoundRobin, haproxy_available
from support.live_server import LiveServer, free_port, runtools
from support.secret_registry import SecretRegistry

pytestmark = pytest.mark.slow

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOST_AFTER = 3.0


@pytest.fixture
def cluster_env(server_env: dict[str, str], database_url: str | None) -> dict[str, str]:
    if database_url is None:
        pytest.skip("many nodes need PostgreSQL: set RUNTOOLS_TEST_DATABASE_URL")
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root (namespaces and cgroups)")
    return {
        **server_env,
        "RUNTOOLS_NAMESPACE": f"t_{secrets.token_hex(6)}",
        "RUNTOOLS_REDIS_URL": LOCAL_REDIS,
        "RUNTOOLS_NODE_HEARTBEAT_SECONDS": "0.5",
        "RUNTOOLS_NODE_LOST_AFTER_SECONDS": str(LOST_AFTER),
        # Room for two sandboxes of 128 MiB per node: placement has to spread them.
        "RUNTOOLS_SANDBOX_MEMORY_BUDGET_MIB": "256",
    }


def _node(env: dict[str, str], tmp_path: Path, name: str, uid_base: int) -> LiveServer:
    return LiveServer(
        env={
            **env,
            "RUNTOOLS_SANDBOX_NODE": name,
            "RUNTOOLS_SANDBOX_STATE_DIR": str(tmp_path / name / "sandboxes"),
            "RUNTOOLS_SANDBOX_UID_BASE": str(uid_base),
        },
        log_path=tmp_path / f"{name}.log",
    )


@pytest.fixture
def two_nodes(cluster_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[LiveServer, ...]]:
    a = _node(cluster_env, tmp_path, "node-a", 300_000)
    b = _node(cluster_env, tmp_path, "node-b", 310_000)
    yield a, b
    for node in (a, b):
        node.stop()


def _bootstrap(env: dict[str, str], registry: SecretRegistry, org: str = "acme") -> str:
    email = f"ada@{org}.example"
    runtools("admin", "create-org", org, env=env)
    runtools("admin", "create-user", email, "--org", org, "--role", "admin", env=env)
    runtools("admin", "set-plan", org, "enterprise", env=env)
    out = runtools(
        "admin", "create-key", "--org", org, "--user", email, "--name", "boot", "--json", env=env
    )
    return str(registry.add(json.loads(out.stdout)["key"]))


def _client(node: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=node.url, headers={"X-API-Key": key}, timeout=60)


@pytest.fixture
def three_nodes_behind_a_balancer(
    cluster_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[RoundRobin, tuple[LiveServer, ...]]]:
    if not haproxy_available():
        pytest.skip("haproxy is not installed (scripts/setup dev installs it)")
    nodes = tuple(
        _node(cluster_env, tmp_path, f"node-{n}", base)
        for n, base in (("a", 300_000), ("b", 310_000), ("c", 320_000))
    )
    balancer = RoundRobin([n.url for n in nodes], tmp_path)
    yield balancer, nodes
    balancer.stop()
    for node in nodes:
        node.stop()


def test_behind_a_round_robin_balancer_every_sandbox_call_succeeds(
    three_nodes_behind_a_balancer: tuple[RoundRobin, tuple[LiveServer, ...]],
    cluster_env: dict[str, str],
    secret_registry: SecretRegistry,
) -> None:
    balancer, nodes = three_nodes_behind_a_balancer
    key = _bootstrap(cluster_env, secret_registry)
    for node in nodes:
        node.start()
    balancer.start()
    front = httpx.Client(base_url=balancer.url, headers={"X-API-Key": key}, timeout=60)

    # Six creates, each sent to whichever node the balancer picks: two land on each node.
    made = []
    for i in range(6):
        reply = front.post("/v1/sandboxes", json={"name": f"s{i}", "resources": {"memory": 128}})
        assert reply.status_code == 201, reply.text
        assert reply.json()["meta"]["requestId"] == reply.headers["X-Request-Id"]
        made.append(reply.json()["data"])
    assert sorted(s["node"] for s in made) == ["node-a"] * 2 + ["node-b"] * 2 + ["node-c"] * 2
    # Every node full: the seventh is refused, whichever node it reaches.
    for _ in range(3):
        full = front.post("/v1/sandboxes", json={"resources": {"memory": 128}})
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "sandbox_unavailable"
    names = [s["name"] for s in made]

    # 60 execs round robin: two in three reach a node that does not hold the sandbox.
    exec_ids = []
    for i in range(60):
        name = names[i % 6]
        run = front.post(f"/v1/sandboxes/{name}/exec", json={"command": f"echo {i}; exit 3"})
        assert run.status_code == 200, run.text
        assert (run.json()["data"]["stdout"], run.json()["data"]["exitCode"]) == (f"{i}\n", 3)
        assert run.json()["meta"]["requestId"] == run.headers["X-Request-Id"]
        assert run.headers["X-RateLimit-Limit"]
        exec_ids.append(run.headers["X-Request-Id"])
    for name in names:
        with front.stream(
            "POST", f"/v1/sandboxes/{name}/exec/stream", json={"command": "echo one; echo 2 >&2"}
        ) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("text/event-stream")
            events = streamed.read().decode()
        assert "event: stdout" in events
        assert "event: stderr" in events
        assert "event: exit" in events
        exec_ids.append(streamed.headers["X-Request-Id"])

    blob = os.urandom(5 * 1024 * 1024)
    for name in names[:3]:
        put = front.put(f"/v1/sandboxes/{name}/files", params={"path": "big.bin"}, content=blob)
        assert put.status_code == 200, put.text
        assert put.json()["data"] == {"path": "/workspace/big.bin", "size": len(blob)}
        for _ in range(3):  # each read reaches another node
            got = front.get(f"/v1/sandboxes/{name}/files", params={"path": "big.bin"})
            assert got.status_code == 200
            assert got.content == blob
    listed = front.get(f"/v1/sandboxes/{names[0]}/files/list").json()["data"]
    assert [e["name"] for e in listed] == ["big.bin"]
    for _ in range(3):
        assert front.post(f"/v1/sandboxes/{names[1]}/pause").json()["data"]["status"] == "paused"
        assert front.get(f"/v1/sandboxes/{names[1]}").json()["data"]["status"] == "paused"
        resumed = front.post(f"/v1/sandboxes/{names[1]}/resume")
        assert resumed.json()["data"]["status"] == "running"

    # The SDK and the CLI through the balancer: nothing tells them there are three nodes.
    with RunTools(api_key=key, base_url=balancer.url) as rt:
        for name in names:
            result = rt.sandbox.exec(name, "echo sdk")
            assert (result.stdout, result.exit_code) == ("sdk\n", 0)
        rt.sandbox.write_file(names[2], "note.txt", "from the sdk")
        assert rt.sandbox.read_file(names[2], "note.txt") == b"from the sdk"
    client_env = {**cluster_env, "RUNTOOLS_API_URL": balancer.url, "RUNTOOLS_API_KEY": key}
    for name in names[:3]:
        cli = runtools("sandbox", "exec", name, "echo cli; exit 4", env=client_env, check=False)
        assert (cli.stdout, cli.returncode) == ("cli\n", 4), cli.stderr
    assert "s5" in runtools("sandbox", "list", env=client_env).stdout

    for name in names:
        assert front.delete(f"/v1/sandboxes/{name}").json()["data"]["status"] == "destroyed"

    # 20 creates at once: the placement lock lets exactly the room in, and no node overbooks.
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    front.post("/v1/sandboxes", json={"resources": {"memory": 128}}).status_code
                ),
                range(20),
            )
        )
    assert sorted(statuses) == [201] * 6 + [503] * 14
    listed_nodes = json.loads(runtools("admin", "nodes", "--json", env=cluster_env).stdout)
    assert {(n["sandboxes"], n["memoryPromisedMib"]) for n in listed_nodes} == {(2, 256)}

    # Each forwarded exec was audited once, on the owner, under the caller's request id.
    audited = []
    params = {"action": "sandbox.exec", "limit": "100"}
    while True:
        page = front.get("/v1/audit-logs", params=params).json()
        audited += [e["requestId"] for e in page["data"]]
        if not page["meta"]["hasMore"]:
            break
        params["cursor"] = page["meta"]["nextCursor"]
    assert set(exec_ids) <= set(audited)
    assert len(audited) == len(set(audited))


def test_forwarding_never_skips_the_owners_checks(
    two_nodes: tuple[LiveServer, LiveServer],
    cluster_env: dict[str, str],
    secret_registry: SecretRegistry,
) -> None:
    a, b = two_nodes
    key = _bootstrap(cluster_env, secret_registry)
    other_org_key = _bootstrap(cluster_env, secret_registry, org="globex")
    a.start()
    b.start()
    admin = _client(b, key)
    # Fill B first, so the sandbox lands on B whichever node is asked.
    created = admin.post("/v1/sandboxes", json={"name": "mine", "resources": {"memory": 256}})
    assert created.status_code == 201, created.text
    sandbox = created.json()["data"]
    owner = next(n for n in (a, b) if n.env["RUNTOOLS_SANDBOX_NODE"] == sandbox["node"])
    other = b if owner is a else a

    narrow = admin.post("/v1/api-keys", json={"name": "reader", "scopes": ["sandbox:read"]})
    narrow_key = secret_registry.add(narrow.json()["data"]["key"])
    refused = _client(other, narrow_key).post(
        f"/v1/sandboxes/{sandbox['id']}/exec", json={"command": "true"}
    )
    assert refused.status_code == 403
    assert "sandbox:exec" in refused.json()["error"]["message"]
    assert _client(other, narrow_key).get(f"/v1/sandboxes/{sandbox['id']}").status_code == 200

    stranger = _client(other, other_org_key)
    for call in (
        stranger.post(f"/v1/sandboxes/{sandbox['id']}/exec", json={"command": "true"}),
        stranger.get(f"/v1/sandboxes/{sandbox['id']}/files", params={"path": "x"}),
        stranger.delete(f"/v1/sandboxes/{sandbox['id']}"),
    ):
        assert call.status_code == 404
    assert admin.get(f"/v1/sandboxes/{sandbox['id']}").json()["data"]["status"] == "running"

    # A node mark from anyone but a node: malformed, or signed with another secret.
    target = f"/v1/sandboxes/{sandbox['id']}/exec"
    forged = seal(
        NodeMark(
            node="node-x",
            issued_at=time.time(),
            method="POST",
            target=target,
            request_id="req_forged",
            ip="203.0.113.9",
        ),
        secrets.token_bytes(32),
    )
    for mark in ("v1.garbage.sig", forged):
        reply = httpx.post(
            f"{owner.url}{target}",
            headers={"X-API-Key": key, "X-Runtools-Forwarded": mark},
            json={"command": "true"},
        )
        assert reply.status_code == 403, reply.text
        assert reply.json()["error"]["code"] == "forbidden"
        assert reply.json()["error"]["requestId"] != "req_forged"


def test_a_node_that_knows_where_a_sandbox_is_still_lets_its_owner_decide(
    two_nodes: tuple[LiveServer, LiveServer],
    cluster_env: dict[str, str],
    secret_registry: SecretRegistry,
) -> None:
    a, b = two_nodes
    key = _bootstrap(cluster_env, secret_registry)
    other_org_key = _bootstrap(cluster_env, secret_registry, org="initech")
    for node in (a, b):
        node.env["RUNTOOLS_SANDBOX_MAX_FILE_BYTES"] = str(8 << 20)
    a.start()
    b.start()
    created = _client(a, key).post(
        "/v1/sandboxes", json={"name": "kept", "resources": {"memory": 128}}
    )
    assert created.status_code == 201, created.text
    sandbox = created.json()["data"]
    owner = next(n for n in (a, b) if n.env["RUNTOOLS_SANDBOX_NODE"] == sandbox["node"])
    other = b if owner is a else a
    via_other = _client(other, key)
    run = f"/v1/sandboxes/{sandbox['id']}/exec"
    for i in range(3):  # the other node now forwards these without looking the sandbox up
        ran = via_other.post(run, json={"command": f"echo {i}"})
        assert ran.status_code == 200, ran.text
        assert ran.json()["data"]["stdout"] == f"{i}\n"

    narrow = via_other.post("/v1/api-keys", json={"name": "ro", "scopes": ["sandbox:read"]})
    narrow_key = secret_registry.add(narrow.json()["data"]["key"])
    assert _client(other, narrow_key).post(run, json={"command": "true"}).status_code == 403
    stranger = _client(other, other_org_key)
    assert stranger.post(run, json={"command": "touch /workspace/x"}).status_code == 404
    files = f"/v1/sandboxes/{sandbox['id']}/files"
    assert stranger.get(files, params={"path": "x"}).status_code == 404
    assert via_other.get(f"{files}/list").json()["data"] == []  # the stranger ran nothing

    # Uploads stream through: one that fits round-trips, one too large leaves nothing.
    blob = os.urandom(5 * 1024 * 1024)
    put = via_other.put(files, params={"path": "big.bin"}, content=blob)
    assert put.json()["data"] == {"path": "/workspace/big.bin", "size": len(blob)}
    assert via_other.get(files, params={"path": "big.bin"}).content == blob

    def chunks(total: int) -> Iterator[bytes]:
        for _ in range(total // (1 << 20)):
            yield b"o" * (1 << 20)

    over = via_other.put(files, params={"path": "over.bin"}, content=chunks(9 << 20))
    assert over.status_code == 413, over.text
    listed = _client(owner, key).get(f"{files}/list").json()["data"]
    assert [e["name"] for e in listed] == ["big.bin"]

    # The owner answers for the sandbox's state: paused, then destroyed.
    assert via_other.post(f"/v1/sandboxes/{sandbox['id']}/pause").status_code == 200
    paused = via_other.post(run, json={"command": "true"})
    assert paused.status_code == 409, paused.text
    assert via_other.post(f"/v1/sandboxes/{sandbox['id']}/resume").status_code == 200
    assert via_other.post(run, json={"command": "true"}).status_code == 200
    assert via_other.delete(f"/v1/sandboxes/{sandbox['id']}").status_code == 200
    gone = via_other.post(run, json={"command": "true"})
    assert gone.status_code == 409
    assert "destroyed" in gone.json()["error"]["message"]

    # The holder dies: calls for its sandbox end in "failed" on the node that is left.
    held = via_other.post("/v1/sandboxes", json={"resources": {"memory": 128}}).json()["data"]
    holder = next(n for n in (a, b) if n.env["RUNTOOLS_SANDBOX_NODE"] == held["node"])
    via_other = _client(b if holder is a else a, key)
    run = f"/v1/sandboxes/{held['id']}/exec"
    assert via_other.post(run, json={"command": "true"}).status_code == 200
    holder.kill_hard()
    deadline = time.monotonic() + LOST_AFTER + 10
    seen = []
    while time.monotonic() < deadline:
        seen.append(via_other.post(run, json={"command": "true"}).status_code)
        if seen[-1] == 409:
            break
        time.sleep(0.2)
    assert seen[-1] == 409, seen
    assert set(seen) <= {503, 409}, seen
    status = via_other.get(f"/v1/sandboxes/{held['id']}").json()["data"]["status"]
    assert status == "failed"


def test_a_lost_node_frees_its_sandboxes_and_creates_go_to_the_live_ones(
    two_nodes: tuple[LiveServer, LiveServer],
    cluster_env: dict[str, str],
    secret_registry: SecretRegistry,
) -> None:
    a, b = two_nodes
    key = _bootstrap(cluster_env, secret_registry)
    for node in (a, b):
        node.env["RUNTOOLS_SANDBOX_QUOTA"] = "4"
    a.start()
    b.start()
    via_a = _client(a, key)
    placed = [
        via_a.post("/v1/sandboxes", json={"resources": {"memory": 64}}).json()["data"]
        for _ in range(4)
    ]
    on_b = [s["id"] for s in placed if s["node"] == "node-b"]
    assert len(on_b) == 2
    over = via_a.post("/v1/sandboxes", json={"resources": {"memory": 64}})
    assert over.json()["error"]["code"] == "quota_exceeded"

    b.kill_hard()
    deadline = time.monotonic() + LOST_AFTER + 10
    while time.monotonic() < deadline:
        states = [via_a.get(f"/v1/sandboxes/{i}").json()["data"] for i in on_b]
        if all(s["status"] == "failed" for s in states):
            break
        time.sleep(0.2)
    assert [s["statusMessage"] for s in states] == ["node node-b was lost"] * 2

    nodes = runtools("admin", "nodes", "--json", env=cluster_env)
    listed = {n["name"]: n for n in json.loads(nodes.stdout)}
    assert listed["node-b"]["live"] is False
    assert listed["node-b"]["sandboxes"] == 0
    assert listed["node-a"]["live"] is True
    assert listed["node-a"]["sandboxes"] == 2

    # Quota and room freed: a create succeeds, on the live node; the failed ones go from any node.
    fresh = via_a.post("/v1/sandboxes", json={"resources": {"memory": 64}})
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["data"]["node"] == "node-a"
    for sandbox_id in on_b:
        assert via_a.delete(f"/v1/sandboxes/{sandbox_id}").json()["data"]["status"] == "destroyed"
    failed = via_a.get("/v1/audit-logs", params={"action": "sandbox.failed"}).json()["data"]
    assert sorted(e["targetId"] for e in failed) == sorted(on_b)

    # The lost node comes back: it rejoins, and brings back nothing that was failed.
    b.start()
    rejoined = json.loads(runtools("admin", "nodes", "--json", env=cluster_env).stdout)
    assert {n["name"]: n["live"] for n in rejoined} == {"node-a": True, "node-b": True}
    for sandbox_id in on_b:
        assert via_a.get(f"/v1/sandboxes/{sandbox_id}").json()["data"]["status"] == "destroyed"


def test_ssh_goes_to_the_node_that_holds_the_sandbox(
    two_nodes: tuple[LiveServer, LiveServer],
    cluster_env: dict[str, str],
    secret_registry: SecretRegistry,
    tmp_path: Path,
) -> None:
    """Any node says how to reach a sandbox over SSH: the holder's port; only there it opens."""
    if shutil.which("ssh") is None:
        pytest.skip("needs the OpenSSH client (openssh-client)")
    a, b = two_nodes
    ports: dict[str, int] = {}
    for name, node in (("node-a", a), ("node-b", b)):
        ports[name] = free_port()
        node.env["RUNTOOLS_SSH_PORT"] = str(ports[name])
        node.env["RUNTOOLS_SSH_PUBLIC_HOST"] = "127.0.0.1"
    key = _bootstrap(cluster_env, secret_registry)
    a.start()
    b.start()
    via_a = _client(a, key)
    private = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(private)],
        check=True,
        capture_output=True,
    )
    added = via_a.post(
        "/v1/ssh-keys", json={"name": "ada", "publicKey": Path(f"{private}.pub").read_text()}
    )
    assert added.status_code == 201, added.text
    placed = [
        via_a.post("/v1/sandboxes", json={"resources": {"memory": 64}}).json()["data"]
        for _ in range(4)
    ]
    by_node = {s["node"]: s for s in placed}
    assert set(by_node) == {"node-a", "node-b"}
    for name, other in (("node-a", "node-b"), ("node-b", "node-a")):
        box = by_node[name]
        for asked in (a, b):  # whichever node is asked answers for the holder
            access = _client(asked, key).get(f"/v1/sandboxes/{box['id']}/ssh")
            assert access.status_code == 200, access.text
            assert access.json()["data"]["port"] == ports[name]
            assert access.json()["data"]["host"] == "127.0.0.1"
        results = {}
        for target in (name, other):
            results[target] = subprocess.run(
                [
                    "ssh",
                    *("-i", str(private), "-F", "/dev/null", "-p", str(ports[target]), "-T"),
                    *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
                    *("-o", "BatchMode=yes", "-o", "LogLevel=ERROR"),
                    f"{box['id']}@127.0.0.1",
                    "hostname; exit 9",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert results[name].returncode == 9, results[name].stderr
        assert results[other].returncode == 255
        assert "Permission denied (publickey)" in results[other].stderr
