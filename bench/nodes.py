"""Sandboxes across nodes, side by side in one run (needs root, PostgreSQL and haproxy).

    .venv/bin/python bench/nodes.py [--runs 200] [--creates 20]

Two ``runtools serve`` nodes on one PostgreSQL schema, each with its own sandbox
state and uid range, and haproxy round robin in front of them. Reports p50 and
p99 of:

- an exec of ``true`` in a sandbox held by node A, sent to A directly and sent
  to B (which forwards it to A), interleaved call by call;
- a read of a 1 KiB file in that sandbox, the same two ways (no process is
  spawned: the difference is the hop itself);
- create -> first exec -> destroy, sent to A directly and sent through the
  balancer (where each of the three calls may land on either node).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from run import bootstrap  # bench/run.py, which also puts tests/ on the path
from runtools.server.settings import Settings
from support.balancer import RoundRobin
from support.live_server import LiveServer


def quantiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99, in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples) * 1000, cuts[98] * 1000


def timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    reply = call()
    elapsed = time.perf_counter() - started
    assert reply.status_code < 300, reply.text
    return elapsed


def row(label: str, samples: list[float], against: list[float] | None = None) -> str:
    p50, p99 = quantiles(samples)
    line = f"{label:<44} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"
    if against is not None:
        line += f"   +{p50 - quantiles(against)[0]:.1f} ms p50"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="execs of each kind")
    parser.add_argument("--creates", type=int, default=20, help="create→exec rounds of each kind")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    schema = f"bench_{os.urandom(4).hex()}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    home = Path(tempfile.mkdtemp(prefix="runtools-bench-"))
    url = f"{args.postgres}{'&' if '?' in args.postgres else '?'}options=-csearch_path%3D{schema}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    env |= {"RUNTOOLS_HOME": str(home), "RUNTOOLS_DATABASE_URL": url,
            "RUNTOOLS_NAMESPACE": schema, "RUNTOOLS_RATE_LIMITS": "false",
            "RUNTOOLS_SANDBOX_QUOTA": "1000",
            "RUNTOOLS_SANDBOX_STOP_WITH_SERVICE": "true"}  # fmt: skip
    key = bootstrap(Settings(home=home, database_url=url, _env_file=None))
    nodes = [
        LiveServer(
            env=env
            | {
                "RUNTOOLS_SANDBOX_NODE": name,
                "RUNTOOLS_SANDBOX_STATE_DIR": str(home / name),
                "RUNTOOLS_SANDBOX_UID_BASE": str(uid_base),
            },
            log_path=home / f"{name}.log",
            extra_args=("--log-level", "warning"),
        )
        for name, uid_base in (("a", 400_000), ("b", 410_000))
    ]
    balancer = RoundRobin([n.url for n in nodes], home)
    headers = {"X-API-Key": key}
    try:
        for node in nodes:
            node.start()
        balancer.start()
        a, b = nodes
        with httpx.Client(headers=headers, timeout=60) as http:
            # One sandbox on A: B must forward every call for it.
            made = http.post(f"{a.url}/v1/sandboxes", json={"name": "held"}).json()["data"]
            target = f"/v1/sandboxes/{made['id']}/exec"
            holder = a if made["node"] == "a" else b
            other = b if holder is a else a
            body = {"command": "true"}
            direct: list[float] = []
            forwarded: list[float] = []
            for _ in range(10):  # warm both paths
                http.post(f"{holder.url}{target}", json=body)
                http.post(f"{other.url}{target}", json=body)
            for _ in range(args.runs):
                direct.append(timed(lambda: http.post(f"{holder.url}{target}", json=body)))
                forwarded.append(timed(lambda: http.post(f"{other.url}{target}", json=body)))
            # A small file read spawns nothing: what is left is the hop itself.
            files = f"/v1/sandboxes/{made['id']}/files"
            http.put(f"{holder.url}{files}", params={"path": "f.txt"}, content=b"x" * 1024)
            read_direct: list[float] = []
            read_forwarded: list[float] = []
            for _ in range(args.runs):
                read_direct.append(
                    timed(lambda: http.get(f"{holder.url}{files}", params={"path": "f.txt"}))
                )
                read_forwarded.append(
                    timed(lambda: http.get(f"{other.url}{files}", params={"path": "f.txt"}))
                )
            http.delete(f"{a.url}/v1/sandboxes/{made['id']}")

            def create_exec_destroy(base: str) -> float:
                started = time.perf_counter()
                sandbox = http.post(f"{base}/v1/sandboxes", json={}).json()["data"]
                ran = http.post(f"{base}/v1/sandboxes/{sandbox['id']}/exec", json=body)
                elapsed = time.perf_counter() - started
                assert ran.status_code == 200, ran.text
                http.delete(f"{base}/v1/sandboxes/{sandbox['id']}")
                return elapsed

            to_a: list[float] = []
            via_balancer: list[float] = []
            for _ in range(args.creates):
                to_a.append(create_exec_destroy(a.url))
                via_balancer.append(create_exec_destroy(balancer.url))
    finally:
        balancer.stop()
        for node in nodes:
            node.stop()
        shutil.rmtree(home, ignore_errors=True)
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    print(f"runtools node benchmarks — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(row(f"exec `true`, to its node (n={args.runs})", direct))
    print(row(f"exec `true`, forwarded by the other (n={args.runs})", forwarded, direct))
    print(row(f"read a 1 KiB file, from its node (n={args.runs})", read_direct))
    print(row(f"read a 1 KiB file, forwarded (n={args.runs})", read_forwarded, read_direct))
    print(row(f"create→first exec, to node A (n={args.creates})", to_a))
    print(row(f"create→first exec, via haproxy (n={args.creates})", via_balancer, to_a))


if __name__ == "__main__":
    main()
