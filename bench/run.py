"""Benchmarks (not tests): one command, one table.

    .venv/bin/python bench/run.py            # everything (needs wrk; PostgreSQL + Redis for row 3)
    .venv/bin/python bench/run.py --quick    # shorter runs
    .venv/bin/python bench/run.py --http-redis --skip verify --skip revocation
                                             # the HTTP rows with counters in Redis too

1. HTTP: requests/s, p50, p99 of ``GET /v1/me`` with an API key and with a
   session token, against its unauthenticated twin (same body, same handler
   code, ``bench/twin_server.py``; the mean of one twin just before ``/v1/me`` in
   the route table and one just after) and against ``GET /healthz``; one
   server, runs interleaved. The ratios are the headline. Load from ``wrk``. With
   ``--http-redis``, again on a server whose rate-limit counts live in Redis.
2. Verification cost in process with 1k and 1M keys stored: uncached (the full
   path, one indexed lookup) and cached (the steady path, with its count).
3. Revocation propagation between two server processes (Redis; LISTEN/NOTIFY):
   time from the revoking response on node A to the first 401 on node B.
4. Work per request in process (``bench/work.py``): Python bytecodes executed
   for the twin and for ``GET /v1/me`` with each credential (exact, so it
   holds on a noisy machine where the timed ratios wander), then the same
   requests timed without an HTTP server: the fastest of many rotated rounds.
5. Work per request over HTTP, in machine instructions: the server of row 1
   run under ``valgrind --tool=callgrind``, every instruction of the process
   counted (uvicorn, Python, C) while it answers a run of each kind of
   request. Repeatable to a fraction of a percent, however busy the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from runtools.server import operator  # noqa: E402
from runtools.server.domain.audit import RequestContext  # noqa: E402
from runtools.server.domain.keys import generate_key  # noqa: E402
from runtools.server.runtime import build_runtime  # noqa: E402
from runtools.server.settings import Settings  # noqa: E402
from support.live_server import LiveServer, free_port  # noqa: E402
from twin_server import MIRROR_AFTER_PATH, MIRROR_PATH  # noqa: E402  (bench/twin_server.py)

UNLIMITED = 1_000_000_000
BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password-0123"


def bootstrap(settings: Settings, *, unlimited: bool = True) -> str:
    """An org, an admin (password ``BENCH_PASSWORD``) and a '*' key, whose limit is lifted."""
    runtime = build_runtime(settings)
    try:
        operator.create_org(runtime, "bench")
        operator.create_user(
            runtime, BENCH_EMAIL, org_name="bench", role="admin", password=BENCH_PASSWORD,
            display_name=None,
        )  # fmt: skip
        issued, _, _ = operator.create_key(
            runtime, org_name="bench", email=BENCH_EMAIL, name="bench", scopes=["*"],
            expires_in=None, is_test=False,
        )  # fmt: skip
        if unlimited:
            with runtime.database.session() as session:
                # Past the API's plan cap on purpose: an operator's benchmark key.
                session.execute(text("UPDATE api_keys SET rate_limit = :n"), {"n": UNLIMITED})
                session.commit()
        return issued.secret
    finally:
        runtime.close()


# -- 1. HTTP ---------------------------------------------------------------------


def wrk(url: str, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    args = ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        args[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(_wrk_field(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> float:
        value, unit = _wrk_field(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} non-2xx responses; the benchmark is invalid")
    requests = float(_wrk_field(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "requests": requests}


def _wrk_field(pattern: str, out: str) -> re.Match[str]:
    found = re.search(pattern, out)
    if found is None:
        raise SystemExit(f"wrk printed no {pattern!r}:\n{out}")
    return found


def http_cases(url: str, key: str) -> dict[str, tuple[str, dict[str, str]]]:
    """The requests compared, by name: path and headers (signs in for the session's)."""
    signed_in = httpx.post(
        f"{url}/v1/auth/login",
        json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD, "clientName": "bench"},
        timeout=60,
    )
    signed_in.raise_for_status()
    token = signed_in.json()["data"]["accessToken"]
    return {
        "healthz": ("/healthz", {}),
        "twin-before": (MIRROR_PATH, {}),
        "twin-after": (MIRROR_AFTER_PATH, {}),
        "key": ("/v1/me", {"X-API-Key": key}),
        "session": ("/v1/me", {"Authorization": f"Bearer {token}"}),
    }


def bench_server(env: dict[str, str], log_path: Path) -> LiveServer:
    """``bench/twin_server.py``: the real app plus a same-body unauthenticated twin of /v1/me."""
    program = (sys.executable, str(ROOT / "bench" / "twin_server.py"))
    return LiveServer(env=env, log_path=log_path, program=program).start()


def cpu_seconds(server: LiveServer) -> float:
    """User + system CPU the server process has used (Linux ``/proc``)."""
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_http(rounds: int, seconds: float, *, redis_url: str | None = None) -> list[list[str]]:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk not found: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk"
        )
    home = Path(tempfile.mkdtemp(prefix="runtools-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    env |= {"RUNTOOLS_HOME": str(home), "RUNTOOLS_ACCESS_TOKEN_TTL_SECONDS": "3600"}
    env |= {k[6:]: v for k, v in os.environ.items() if k.startswith("BENCH_RUNTOOLS_")}
    if redis_url is not None:  # shared rate-limit counts and revocation events, one node
        env |= {
            "RUNTOOLS_REDIS_URL": redis_url,
            "RUNTOOLS_NAMESPACE": f"bench_{os.urandom(4).hex()}",
        }
    on = " [Redis]" if redis_url is not None else ""
    key = bootstrap(Settings(home=home, _env_file=None))
    server = bench_server(env | {"RUNTOOLS_BENCH_KEY": key}, home / "server.log")
    try:
        cases = http_cases(server.url, key)
        for path, headers in cases.values():  # warm up: caches filled, code paths hot
            wrk(f"{server.url}{path}", 1, headers)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        names = list(cases)
        for round_ in range(rounds):
            # Interleaved, so drift on a shared machine hits all alike, and in reverse
            # order every other round, so no case always runs right after another.
            for name in names if round_ % 2 == 0 else names[::-1]:
                path, headers = cases[name]
                cpu = cpu_seconds(server)
                run = wrk(f"{server.url}{path}", seconds, headers)
                run["cpu_us"] = (cpu_seconds(server) - cpu) / run["requests"] * 1e6
                results[name].append(run)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    # The twin in /v1/me's own place in the route table: per round, the mean of the two.
    results["twin"] = [
        {field: (before[field] + after[field]) / 2 for field in before}
        for before, after in zip(results["twin-before"], results["twin-after"], strict=True)
    ]

    def med(name: str, field: str) -> float:
        return statistics.median(r[field] for r in results[name])

    def row(name: str, label: str) -> list[str]:
        return [label, f"{med(name, 'rps'):,.0f} req/s", f"p50 {med(name, 'p50'):.2f} ms",
                f"p99 {med(name, 'p99'):.2f} ms",
                f"{med(name, 'cpu_us'):.0f} µs CPU/request"]  # fmt: skip

    def ratio(name: str, base: str, label: str) -> list[str]:
        # Per round (runs minutes apart drift together), then the median over rounds.
        pairs = zip(results[name], results[base], strict=True)
        value = statistics.median(r["rps"] / b["rps"] for r, b in pairs)
        pairs = zip(results[name], results[base], strict=True)
        cpu = statistics.median(r["cpu_us"] - b["cpu_us"] for r, b in pairs)
        return [f"  ratio {label}", f"{value:.3f}", f"({(1 - value) * 100:+.1f}% throughput)",
                f"{cpu:+.1f} µs CPU/request"]  # fmt: skip

    return [
        row("healthz", f"GET /healthz (no auth){on}"),
        row("twin", f"GET /v1/me body, no auth (twin, mean of 2){on}"),
        row("key", f"GET /v1/me (API key){on}"),
        row("session", f"GET /v1/me (session token){on}"),
        ratio("key", "twin", f"API key : twin{on}"),
        ratio("session", "twin", f"session token : twin{on}"),
        ratio("key", "healthz", f"API key : /healthz{on}"),
    ]


# -- 2. Verification cost vs stored keys -----------------------------------------


def fill_keys(settings: Settings, total: int) -> list[str]:
    """``total`` stored keys; returns 1000 plaintexts among them for lookups."""
    runtime = build_runtime(settings)
    try:
        operator.create_org(runtime, "fill")
        joined = operator.create_user(
            runtime, "fill@example.com", org_name="fill", role="admin", password=None,
            display_name=None,
        )  # fmt: skip
        with runtime.database.session() as session:
            org_id = session.execute(text("SELECT id FROM organizations")).scalar_one()
        sample = [generate_key(is_test=False) for _ in range(1000)]
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows = (
            (f"key_f{i:09d}", org_id, joined.user.id, "fill",
             hashlib.sha256(os.urandom(16)).hexdigest(), "rt_live_fill", '["*"]', False, now)
            for i in range(total - len(sample))
        )  # fmt: skip
        chosen = (
            (f"key_s{i:09d}", org_id, joined.user.id, "sample", g.key_hash, g.display_prefix,
             '["*"]', False, now)
            for i, g in enumerate(sample)
        )  # fmt: skip
        raw = runtime.database.engine.raw_connection()
        try:
            # sqlite3's own cursor takes the rows as a generator: a million tuples never
            # exist at once (SQLAlchemy's DB-API protocol would ask for a sequence).
            sqlite = raw.driver_connection
            assert isinstance(sqlite, sqlite3.Connection), "the fill writes SQLite only"
            cursor = sqlite.cursor()
            sql = (
                "INSERT INTO api_keys (id, org_id, owner_user_id, name, key_hash, key_prefix, "
                "scopes, is_test, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            for batch in (rows, chosen):
                cursor.executemany(sql, batch)
            raw.commit()
        finally:
            raw.close()
        return [g.plaintext for g in sample]
    finally:
        runtime.close()


def verify_cost(total: int) -> tuple[float, float]:
    home = Path(tempfile.mkdtemp(prefix="runtools-bench-"))
    settings = Settings(home=home, _env_file=None, auth_cache_size=2000)
    try:
        keys = fill_keys(settings, total)
        runtime = build_runtime(settings)
        auth, context = runtime.authenticator, RequestContext  # built only on failure

        async def measure() -> tuple[float, float]:
            started = time.perf_counter()
            for key in keys:  # cold: one indexed lookup each
                await auth.authenticate({"x-api-key": key}, context)
            cold = (time.perf_counter() - started) / len(keys)
            # Cached: the steady path every request takes, straight from the raw headers.
            steady, presented = runtime.steady_path, [[(b"x-api-key", k.encode())] for k in keys]
            started = time.perf_counter()
            for _ in range(50):
                for headers in presented:
                    if steady(headers, {}) is None:
                        raise SystemExit("a cached key was not vouched for")
            hot = (time.perf_counter() - started) / (50 * len(keys))
            return hot, cold

        try:
            return asyncio.run(measure())
        finally:
            runtime.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def bench_verify(sizes: list[int]) -> list[list[str]]:
    rows = []
    for size in sizes:
        hot, cold = verify_cost(size)
        rows.append([f"verify, {size:,} keys stored", f"cached {hot * 1e6:.1f} µs",
                     f"uncached {cold * 1e6:.0f} µs", ""])  # fmt: skip
    return rows


# -- 4. Work per request, counted --------------------------------------------------


def bench_work(rounds: int) -> list[list[str]]:
    home = Path(tempfile.mkdtemp(prefix="runtools-bench-"))
    try:
        key = bootstrap(Settings(home=home, _env_file=None))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
        env |= {"RUNTOOLS_HOME": str(home), "RUNTOOLS_ACCESS_TOKEN_TTL_SECONDS": "3600",
                "RUNTOOLS_BENCH_KEY": key, "RUNTOOLS_BENCH_EMAIL": BENCH_EMAIL,
                "RUNTOOLS_BENCH_PASSWORD": BENCH_PASSWORD}  # fmt: skip
        env |= {k[6:]: v for k, v in os.environ.items() if k.startswith("BENCH_RUNTOOLS_")}
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "work.py"), str(rounds)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        shutil.rmtree(home, ignore_errors=True)
    measured = json.loads(out.splitlines()[-1])
    counts, timed = measured["bytecodes"], measured["microseconds"]
    twin = counts["twin"]
    rows = [["bytecodes/request, /v1/me body, no auth (twin)", f"{twin:,.0f}", "", ""]]
    for name, label in (("key", "API key"), ("session", "session token")):
        added = counts[name] - twin
        rows.append([f"bytecodes/request, /v1/me ({label})", f"{counts[name]:,.0f}",
                     f"+{added:,.0f}", f"({added / twin * 100:+.1f}%)"])  # fmt: skip
    twin = timed["twin"]
    rows.append([f"µs/request in process (fastest of {rounds} rounds), twin", f"{twin:.1f}",
                 "", ""])  # fmt: skip
    for name, label in (("key", "API key"), ("session", "session token")):
        added = timed[name] - twin
        rows.append([f"µs/request in process (fastest of {rounds} rounds), {label}",
                     f"{timed[name]:.1f}", f"+{added:.1f} µs",
                     f"ratio {twin / timed[name]:.3f}"])  # fmt: skip
    return rows


# -- 5. Work per request over HTTP, in instructions ----------------------------------


def _callgrind(pid: int, *command: str) -> None:
    subprocess.run(["callgrind_control", *command, str(pid)], check=True, capture_output=True)


def bench_instructions(requests: int, rounds: int) -> list[list[str]]:
    """Instructions per request, the server under callgrind: the fewest of ``rounds`` runs."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind not found: apt-get install -y valgrind")
    home = Path(tempfile.mkdtemp(prefix="runtools-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    env |= {"RUNTOOLS_HOME": str(home), "RUNTOOLS_ACCESS_TOKEN_TTL_SECONDS": "3600"}
    env |= {k[6:]: v for k, v in os.environ.items() if k.startswith("BENCH_RUNTOOLS_")}
    # Background rounds (the idle-sandbox check, the lastUsedAt batch) would land in some
    # runs and not others: out of the way here, so the counts are the requests' own.
    env |= {"RUNTOOLS_SANDBOX_IDLE_CHECK_SECONDS": "3600",
            "RUNTOOLS_LAST_USED_FLUSH_SECONDS": "3600"}  # fmt: skip
    key = bootstrap(Settings(home=home, _env_file=None))
    port = free_port()
    out = home / "callgrind.out"
    # Counting starts only when asked (after start-up and warm-up): --instr-atstart=no.
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         sys.executable, str(ROOT / "bench" / "twin_server.py"), "--port", str(port)],
        env=env | {"RUNTOOLS_BENCH_KEY": key},
        stdout=(home / "server.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    counts: dict[str, list[float]] = {}
    try:
        deadline = time.monotonic() + 600  # Python starts slowly under valgrind
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(home / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(1)
        with httpx.Client(base_url=url, timeout=60) as http:
            cases = http_cases(url, key)

            def run(name: str, times: int) -> None:
                path, headers = cases[name]
                for _ in range(times):
                    if http.get(path, headers=headers).status_code != 200:
                        raise SystemExit(f"{path}: not a 200; the benchmark is invalid")

            for name in cases:
                run(name, 20)
            _callgrind(server.pid, "--instr=on")
            names = list(cases)
            for round_ in range(rounds):
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    run(name, 5)  # what turning counting on left cold
                    _callgrind(server.pid, "--zero")
                    run(name, requests)
                    _callgrind(server.pid, "--dump")
                    dumps = sorted(home.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
                    total = re.search(r"^(?:summary|totals): (\d+)", dumps[-1].read_text(), re.M)
                    assert total is not None, dumps[-1]
                    counts.setdefault(name, []).append(int(total.group(1)) / requests)
    finally:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)
    fewest = {name: min(values) for name, values in counts.items()}
    twin = (fewest["twin-before"] + fewest["twin-after"]) / 2
    rows = [
        ["instructions/request over HTTP, /healthz", f"{fewest['healthz']:,.0f}", "", ""],
        ["instructions/request over HTTP, twin (mean of 2)", f"{twin:,.0f}", "", ""],
    ]
    for name, label in (("key", "API key"), ("session", "session token")):
        added = fewest[name] - twin
        share = f"{added:+,.0f} ({added / twin * 100:+.1f}%)"
        rows.append([f"instructions/request over HTTP, /v1/me ({label})",
                     f"{fewest[name]:,.0f}", share, ""])  # fmt: skip
    return rows


# -- 3. Revocation propagation ----------------------------------------------------


def bench_propagation(postgres: str, redis_url: str | None, count: int) -> list[str]:
    schema = f"bench_{os.urandom(4).hex()}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    home = Path(tempfile.mkdtemp(prefix="runtools-bench-"))
    url = f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_")}
    # Rate limits off: a hundred creates and revokes a minute would outrun the plan.
    env |= {"RUNTOOLS_HOME": str(home), "RUNTOOLS_DATABASE_URL": url,
            "RUNTOOLS_NAMESPACE": schema, "RUNTOOLS_RATE_LIMITS": "false"}  # fmt: skip
    if redis_url:
        env["RUNTOOLS_REDIS_URL"] = redis_url
    settings = Settings(home=home, database_url=url, _env_file=None)
    admin = bootstrap(settings)
    quiet = ("--log-level", "warning")
    a = LiveServer(env=env | {"RUNTOOLS_SANDBOX_NODE": "a"}, log_path=home / "a.log",
                   extra_args=quiet)  # fmt: skip
    b = LiveServer(env=env | {"RUNTOOLS_SANDBOX_NODE": "b",
                              "RUNTOOLS_SANDBOX_STATE_DIR": str(home / "b-sandboxes")},
                   log_path=home / "b.log",
                   extra_args=quiet)  # fmt: skip
    delays = []
    try:
        a.start()
        b.start()
        with httpx.Client(timeout=10) as http:
            for i in range(count):
                made = http.post(f"{a.url}/v1/api-keys", headers={"X-API-Key": admin},
                                 json={"name": f"p{i}"}).json()["data"]  # fmt: skip
                assert (
                    http.get(f"{b.url}/v1/me", headers={"X-API-Key": made["key"]}).status_code
                    == 200
                )
                http.delete(f"{a.url}/v1/api-keys/{made['id']}", headers={"X-API-Key": admin})
                revoked_at = time.perf_counter()
                while (
                    http.get(f"{b.url}/v1/me", headers={"X-API-Key": made["key"]}).status_code
                    != 401
                ):
                    pass
                delays.append(time.perf_counter() - revoked_at)
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(home, ignore_errors=True)
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    via = "Redis pub/sub" if redis_url else "PostgreSQL LISTEN/NOTIFY"
    return [f"revocation A→B via {via} (n={count})",
            f"median {statistics.median(delays) * 1000:.1f} ms",
            f"max {max(delays) * 1000:.1f} ms", ""]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, 100k instead of 1M keys")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--http-redis",
        action="store_true",
        help="run the HTTP rows again with Redis counters (--redis)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["http", "verify", "revocation", "work", "instructions"],
    )
    args = parser.parse_args()
    rows: list[list[str]] = []

    def measured(new: list[list[str]]) -> None:
        # Each row also goes to stderr at once: a late failure keeps what came before.
        for row in new:
            print("  ".join(row).rstrip(), file=sys.stderr, flush=True)
        rows.extend(new)

    if "http" not in args.skip:
        rounds, seconds = (4, 2) if args.quick else (12, 5)
        measured(bench_http(rounds, seconds))
        if args.http_redis:
            measured(bench_http(rounds, seconds, redis_url=args.redis))
    if "verify" not in args.skip:
        measured(bench_verify([1_000, 100_000 if args.quick else 1_000_000]))
    if "work" not in args.skip:
        measured(bench_work(40 if args.quick else 150))
    if "instructions" not in args.skip:
        measured(bench_instructions(*((50, 3) if args.quick else (100, 6))))
    if "revocation" not in args.skip:
        count = 20 if args.quick else 100
        measured([bench_propagation(args.postgres, args.redis, count)])
        measured([bench_propagation(args.postgres, None, count)])
    columns = max(len(r) for r in rows)
    rows = [r + [""] * (columns - len(r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(columns)]
    print(f"runtools benchmarks — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
