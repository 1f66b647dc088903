"""Sandbox latency, memory and adoption, side by side in one run (needs root).

    .venv/bin/python bench/sandbox.py [--runs 20] [--adopt 100]

Reports p50 and p99 of:
- a bare ``bwrap`` spawn of ``true`` with the driver's namespace flags
  (``layout.bwrap_argv``): the floor everything else is compared with;
- create -> first exec, through the driver and through the HTTP API
  (a real server on 127.0.0.1, SQLite, the SDK as client);
- one ``true`` exec in a running sandbox, and ``/bin/sh -c true`` run
  directly on the host;
and the ratios against the bare spawn (goals: create -> first exec p50
within 10x, exec p50 within 3x). Then the memory an idle sandbox is charged
(its memory cgroup's ``memory.current`` / ``memory.usage_in_bytes``), and
what adoption costs: a real ``runtools serve`` with ``--adopt`` sandboxes is
stopped (SIGTERM) and started again, timed until ``/readyz`` answers and
every sandbox is ``running``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from runtools import RunTools
from runtools.server.sandbox import LocalSandboxDriver, SandboxSpec
from runtools.server.sandbox.layout import bwrap_argv
from runtools.server.settings import Settings
from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry
from support.served_app import serve

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Small enough for many at once within the node's memory budget.
SMALL = {"vcpus": 1, "memory": 128, "disk": 1024}
MEMORY_FILES = ("memory.current", "memory.usage_in_bytes")


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bare_bwrap(runs: int) -> list[float]:
    """The floor: bubblewrap alone, the driver's namespaces, running ``true``."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SystemExit("bubblewrap is not installed")
    argv = bwrap_argv(
        bwrap, SandboxSpec(), etc_fds={}, info_fd=None, seccomp_fd=None, command=["/bin/true"]
    )
    subprocess.run(argv, check=True)  # warm
    return [timed(lambda: subprocess.run(argv, check=True)) for _ in range(runs)]


def idle_memory(sandbox_id: str) -> int:
    """Bytes charged to the sandbox's memory cgroup (its children included)."""
    for dirpath, dirnames, _ in os.walk(CGROUP_ROOT):
        if sandbox_id in dirnames:
            group = Path(dirpath) / sandbox_id
            for name in MEMORY_FILES:
                if (group / name).exists():
                    return int((group / name).read_text())
    raise SystemExit(f"no memory cgroup found for {sandbox_id}")


async def driver_numbers(root: Path, runs: int) -> dict[str, list[float] | float]:
    driver = LocalSandboxDriver(root)
    await driver.check_available()
    create_exec, execs = [], []
    try:
        for i in range(runs):
            started = time.perf_counter()
            await driver.create(f"bench-{i}", SandboxSpec())
            await driver.exec(f"bench-{i}", "true")
            create_exec.append(time.perf_counter() - started)
        for _ in range(runs):
            started = time.perf_counter()
            await driver.exec("bench-0", "true")
            execs.append(time.perf_counter() - started)
        await asyncio.sleep(1)  # let the last command's leaf go
        memory = statistics.median(idle_memory(f"bench-{i}") for i in range(runs))
    finally:
        await driver.reap_orphans(set())
    return {"create_exec": create_exec, "exec": execs, "memory": memory}


def api_numbers(home: Path, runs: int) -> dict[str, list[float]]:
    # Rate limits off: the benchmark sends more than a client is allowed per minute.
    settings = Settings(home=home, sandbox_quota=runs + 1, rate_limits=False, _env_file=None)
    try:
        with serve(settings, SecretRegistry()) as app:
            caller = app.caller()
            with RunTools(api_key=caller.key, base_url=app.url) as rt:
                rt.me()  # warm the connection and the key cache
                create_exec, execs = [], []
                ids = []
                for _ in range(runs):
                    started = time.perf_counter()
                    sandbox = rt.sandbox.create(resources=SMALL)
                    sandbox.exec("true")
                    create_exec.append(time.perf_counter() - started)
                    ids.append(sandbox.id)
                for _ in range(runs):
                    execs.append(timed(lambda: rt.sandbox.exec(ids[0], "true")))
                for sandbox_id in ids:
                    rt.sandbox.destroy(sandbox_id)
    finally:
        # Sandboxes outlive the server: whatever a failed run left must go with it.
        asyncio.run(reap(settings.sandbox_root))
    return {"create_exec": create_exec, "exec": execs}


async def reap(root: Path) -> None:
    driver = LocalSandboxDriver(root)
    await driver.check_available()
    await driver.reap_orphans(set())


def host_exec(runs: int) -> list[float]:
    return [
        timed(lambda: subprocess.run(["/bin/sh", "-c", "true"], check=True)) for _ in range(runs)
    ]


def adoption(home: Path, count: int) -> float:
    """Seconds from starting a stopped server until it is ready and all sandboxes run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    env.update(
        RUNTOOLS_HOME=str(home), RUNTOOLS_SANDBOX_QUOTA=str(count), RUNTOOLS_RATE_LIMITS="false"
    )
    registry = SecretRegistry()
    runtools("admin", "create-org", "acme", env=env)
    runtools("admin", "create-user", "ada@example.com", "--org", "acme", "--role", "admin", env=env)
    out = runtools(
        "admin", "create-key", "--org", "acme", "--user", "ada@example.com", "--name", "bench",
        "--json", env=env,
    )  # fmt: skip
    key = str(registry.add(json.loads(out.stdout)["key"]))
    server = LiveServer(env=env, log_path=home / "server.log")
    server.start()
    try:
        with RunTools(api_key=key, base_url=server.url) as rt:
            ids = [
                rt.sandbox.create(resources={"vcpus": 0.5, "memory": 32, "disk": 64}).id
                for _ in range(count)
            ]
        server.stop()
        started = time.perf_counter()
        server.start()
        api = httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=60)
        while api.get("/readyz").status_code != 200:
            time.sleep(0.01)
        pending = set(ids)
        while pending:
            for sandbox_id in list(pending):
                status = api.get(f"/v1/sandboxes/{sandbox_id}").json()["data"]["status"]
                if status == "running":
                    pending.discard(sandbox_id)
                elif status == "failed":
                    raise SystemExit(f"sandbox {sandbox_id} failed on adoption")
        elapsed = time.perf_counter() - started
        api.close()
    finally:
        server.stop()
        runtools("admin", "sandboxes", "drain", "--yes", env=env, check=False)
    return elapsed


def row(name: str, samples: list[float], floor: float) -> str:
    return f"{name:34}{ms(samples):>9.1f}{p99(samples):>9.1f}{ms(samples) / floor:>9.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--adopt", type=int, default=100, help="sandboxes to adopt (0: skip)")
    args = parser.parse_args()
    runs = args.runs
    with tempfile.TemporaryDirectory() as tmp:
        bare = bare_bwrap(runs)
        host = host_exec(runs)
        drv = asyncio.run(driver_numbers(Path(tmp) / "driver", runs))
        api = api_numbers(Path(tmp) / "home", runs)
        adopt = adoption(Path(tmp) / "adopt", args.adopt) if args.adopt else None
    floor = ms(bare)
    assert isinstance(drv["create_exec"], list)
    assert isinstance(drv["exec"], list)
    assert isinstance(drv["memory"], float | int)
    print(f"sandbox latency, {runs} runs (ms; ratio of p50 to the bare spawn's p50)")
    print(f"{'':34}{'p50':>9}{'p99':>9}{'ratio':>10}")
    print(row("bare bwrap spawn of `true`", bare, floor))
    print(row("`sh -c true` on the host", host, floor))
    print(row("create -> first exec (driver)", drv["create_exec"], floor))
    print(row("create -> first exec (HTTP API)", api["create_exec"], floor))
    print(row("exec `true` (driver)", drv["exec"], floor))
    print(row("exec `true` (HTTP API)", api["exec"], floor))
    create_ratio = ms(drv["create_exec"]) / floor
    exec_ratio = ms(drv["exec"]) / floor
    print(
        f"goals (driver p50): create -> first exec within 10x: "
        f"{'met' if create_ratio <= 10 else 'NOT met'} ({create_ratio:.1f}x); "
        f"exec within 3x: {'met' if exec_ratio <= 3 else 'NOT met'} ({exec_ratio:.1f}x)"
    )
    print(f"memory per idle sandbox: {drv['memory'] / (1024 * 1024):.2f} MiB (median)")
    if adopt is not None:
        print(f"adopting {args.adopt} sandboxes after a stop: {adopt:.2f} s to ready, all running")
    print("anchors: E2B create ~100-150 ms; Daytona create->exec < 90 ms")


if __name__ == "__main__":
    main()
