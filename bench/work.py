"""Work per request, counted: Python bytecodes executed for one request, in process.

    RUNTOOLS_HOME=… RUNTOOLS_BENCH_KEY=rt_live_… python bench/work.py   # prints JSON

The app of ``bench/twin_server.py`` is driven through ASGI directly (no HTTP
server, no socket) and every bytecode executed while it answers is counted
(``sys.settrace`` with opcode events). The baseline is the mean of two
unauthenticated twins, one just before ``/v1/me`` and one just after: a twin
in ``/v1/me``'s own place in the route table. Unlike the timed rows this is exact
and the same on a quiet or a busy machine: it shows what authentication
adds in Python, the part of a request's cost this project controls. Work
done inside C functions (hashing, dict lookups) counts as the one bytecode
that calls it; the HTTP server's own work (uvicorn) is not included.

The same requests are then timed, untraced: rounds of 100 requests of each
kind, the order of the kinds rotated every round, and per kind the fastest
round kept (the least disturbed by a shared machine's neighbours). Timed,
what the count leaves out shows: work inside C functions, memory effects of
a longer path. ``python bench/work.py [ROUNDS]`` (default 150).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message

from twin_server import MIRROR_AFTER_PATH, MIRROR_PATH, create  # bench/twin_server.py

REQUESTS = 200
WARM_UP = 50


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8700),
    }


async def _call(
    app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(method, path, headers), receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _counting(counter: list[int]) -> Callable[[FrameType, str, Any], Any]:
    def on_opcode(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            counter[0] += 1
        return on_opcode

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return on_opcode

    return on_call


async def _bytecodes_per_request(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]
) -> float:
    for _ in range(WARM_UP):  # caches filled, lazily built objects built
        status, _ = await _call(app, "GET", path, headers)
        if status != 200:
            raise SystemExit(f"{path}: status {status}; the count is invalid")
    counter = [0]
    sys.settrace(_counting(counter))
    try:
        for _ in range(REQUESTS):
            await _call(app, "GET", path, headers)
    finally:
        sys.settrace(None)
    return counter[0] / REQUESTS


async def _fastest_rounds(
    app: ASGIApp, requests: dict[str, tuple[str, list[tuple[bytes, bytes]]]], rounds: int
) -> dict[str, float]:
    """µs per request of each kind: the fastest of ``rounds`` rounds of 100, order rotated."""
    kinds = list(requests)
    fastest = dict.fromkeys(kinds, float("inf"))
    for turn in range(rounds):
        for kind in kinds[turn % len(kinds) :] + kinds[: turn % len(kinds)]:
            path, headers = requests[kind]
            started = time.perf_counter()
            for _ in range(100):
                await _call(app, "GET", path, headers)
            fastest[kind] = min(fastest[kind], (time.perf_counter() - started) / 100 * 1e6)
    return fastest


async def _measure(
    app: ASGIApp, key: str, email: str, password: str, rounds: int
) -> dict[str, dict[str, float]]:
    login = json.dumps({"email": email, "password": password, "clientName": "bench"}).encode()
    status, body = await _call(
        app, "POST", "/v1/auth/login", [(b"content-type", b"application/json")], login
    )
    if status != 200:
        raise SystemExit(f"sign-in for the session row failed: {status}")
    token = json.loads(body)["data"]["accessToken"]
    # One twin just before /v1/me, one just after: their mean is a twin in /v1/me's
    # own place in the route table, so no route check is counted for one side only.
    requests = {
        "before": (MIRROR_PATH, []),
        "after": (MIRROR_AFTER_PATH, []),
        "key": ("/v1/me", [(b"x-api-key", key.encode())]),
        "session": ("/v1/me", [(b"authorization", b"Bearer " + token.encode())]),
    }
    counted = {kind: await _bytecodes_per_request(app, *r) for kind, r in requests.items()}
    timed = await _fastest_rounds(app, requests, rounds)
    return {
        measure: {
            "twin": (values["before"] + values["after"]) / 2,
            "key": values["key"],
            "session": values["session"],
        }
        for measure, values in (("bytecodes", counted), ("microseconds", timed))
    }


def main() -> None:
    import os

    app = create()
    runtime = app.state.runtime
    runtime.start_background()
    try:
        counts = asyncio.run(
            _measure(
                app,
                os.environ["RUNTOOLS_BENCH_KEY"],
                os.environ["RUNTOOLS_BENCH_EMAIL"],
                os.environ["RUNTOOLS_BENCH_PASSWORD"],
                int(sys.argv[1]) if len(sys.argv) > 1 else 150,
            )
        )
    finally:
        runtime.close()
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
