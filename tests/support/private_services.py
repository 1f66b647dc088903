"""Private Redis and PostgreSQL servers a test can stop and start again.

Real servers on free ports under the test's temporary directory, so a test
can cut the service away mid-run and watch the API fail safely and recover.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from support.live_server import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class PrivateRedis:
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _as_postgres_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _postgres_workdir() -> Path:
    # Not under pytest's tmp_path: as root, initdb runs as "postgres", who cannot enter it.
    return Path(tempfile.mkdtemp(prefix="runtools-pg-"))


@dataclass
class PrivatePostgres:
    workdir: Path = field(default_factory=_postgres_workdir)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    def init(self) -> PrivatePostgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        subprocess.run(
            _as_postgres_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return self

    def start(self) -> PrivatePostgres:
        subprocess.run(
            _as_postgres_user(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.workdir / "pg.log"),
                    "-w",
                    "-o",
                    f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return self
            except psycopg.Error:
                time.sleep(0.1)
        raise AssertionError("private PostgreSQL did not start")

    def stop(self) -> None:
        subprocess.run(
            _as_postgres_user(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"]
            ),
            check=False,
            capture_output=True,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
