"""Sandbox latency, side by side in one run (needs root, like the service).

    .venv/bin/python bench/sandbox.py [--runs 20]

Reports medians of:
- create -> first exec, through the driver and through the HTTP API
  (a real server on 127.0.0.1, SQLite, the SDK as client);
- one ``true`` exec in a running sandbox, against ``/bin/sh -c true`` run
  directly on the host, and the ratio between them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from runtools import RunTools
from runtools.server.sandbox import LocalSandboxDriver, SandboxSpec
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.served_app import serve


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def driver_numbers(root: Path, runs: int) -> dict[str, float]:
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
    finally:
        await driver.reap_orphans(set())
    return {"create_exec": ms(create_exec), "exec": ms(execs)}


def api_numbers(home: Path, runs: int) -> dict[str, float]:
    settings = Settings(home=home, sandbox_quota=runs + 1, _env_file=None)
    with serve(settings, SecretRegistry()) as app:
        caller = app.caller()
        with RunTools(api_key=caller.key, base_url=app.url) as rt:
            rt.me()  # warm the connection and the key cache
            create_exec, execs = [], []
            ids = []
            for _ in range(runs):
                started = time.perf_counter()
                sandbox = rt.sandbox.create()
                sandbox.exec("true")
                create_exec.append(time.perf_counter() - started)
                ids.append(sandbox.id)
            for _ in range(runs):
                execs.append(timed(lambda: rt.sandbox.exec(ids[0], "true")))
            for sandbox_id in ids:
                rt.sandbox.destroy(sandbox_id)
    return {"create_exec": ms(create_exec), "exec": ms(execs)}


def host_exec(runs: int) -> float:
    return ms(
        [timed(lambda: subprocess.run(["/bin/sh", "-c", "true"], check=True)) for _ in range(runs)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        host = host_exec(runs)
        drv = asyncio.run(driver_numbers(Path(tmp) / "driver", runs))
        api = api_numbers(Path(tmp) / "home", runs)
    print(f"sandbox latency, median of {runs} runs (ms)")
    print(f"{'':28}{'driver':>10}{'HTTP API':>10}")
    print(f"{'create -> first exec':28}{drv['create_exec']:>10.1f}{api['create_exec']:>10.1f}")
    print(f"{'exec `true` in sandbox':28}{drv['exec']:>10.1f}{api['exec']:>10.1f}")
    print(f"{'`sh -c true` on the host':28}{host:>10.1f}{host:>10.1f}")
    print(f"{'exec overhead vs host (x)':28}{drv['exec'] / host:>10.1f}{api['exec'] / host:>10.1f}")
    print("anchors: E2B create ~100-150 ms; Daytona create->exec < 90 ms")


if __name__ == "__main__":
    main()
