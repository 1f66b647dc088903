"""A real haproxy in front of live servers, sending each request to the next one in turn."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.live_server import free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def haproxy_available() -> bool:
    return Path(HAPROXY).is_file()


@dataclass
class RoundRobin:
    """haproxy in HTTP mode: round robin per request, keep-alive to the client."""

    backends: list[str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RoundRobin:
        servers = "\n".join(
            f"    server n{i} {url.removeprefix('http://')}" for i, url in enumerate(self.backends)
        )
        config = self.workdir / "haproxy.cfg"
        config.write_text(
            f"""global
    maxconn 512
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    # Each request of a kept-alive client connection goes to the next server.
    option http-server-close
frontend front
    bind 127.0.0.1:{self.port}
    default_backend nodes
backend nodes
    balance roundrobin
{servers}
"""
        )
        log = (self.workdir / "haproxy.log").open("ab")
        self.process = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError((self.workdir / "haproxy.log").read_text())
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("haproxy did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
