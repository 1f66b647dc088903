"""The ``runtools`` command run inside the test process, as a user would type it.

The real command tree (``runtools.cli.app``), its real argument parsing
(global options in any position, JSON usage errors) and real HTTP to a
real server: only the process is shared. Exit codes, stdout and stderr are
captured as a shell would see them. What only a process shows (the entry
point, a terminal on stdin) has its own smoke tests, in a subprocess.

    cli = CommandLine({"RUNTOOLS_API_URL": url, "RUNTOOLS_CONFIG_DIR": str(config)})
    status = cli("auth", "status", "--json").json
    refused = cli("auth", "keys", "get", "key_nope", check=False)
    assert refused.exit_code == 6
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import typer
from typer.testing import CliRunner

from runtools.cli.app import app

#: ``watch`` gets a function returning what the command has written to stderr so far.
Watcher = Callable[[Callable[[], str]], None]


@dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def _isolated_env(env: Mapping[str, str | None]) -> dict[str, str | None]:
    """Nothing of the caller's RUNTOOLS_* settings, then ``env`` (None unsets)."""
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RUNTOOLS_")}
    cleared["DISPLAY"] = None  # `runtools login` must never open a browser here
    return {**cleared, **env}


class CommandLine:
    """Runs ``runtools …`` in-process with a fixed environment (plus per-call additions)."""

    def __init__(self, env: Mapping[str, str | None]) -> None:
        self.env = dict(env)
        self._command = typer.main.get_command(app)

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        env: Mapping[str, str | None] | None = None,
        check: bool = True,
        watch: Watcher | None = None,
    ) -> Ran:
        """Run the command; ``check`` fails the test on a nonzero exit.

        ``watch`` runs in a thread beside the command, reading its stderr as
        it comes (a sign-in code to approve, say); its failure fails the call.
        """
        runner = CliRunner()
        with runner.isolation(input=stdin, env=_isolated_env({**self.env, **(env or {})})) as (
            stdout,
            stderr,
            _,
        ):
            failures: list[BaseException] = []
            watcher = None
            if watch is not None:

                def run_watch() -> None:
                    try:
                        watch(lambda: stderr.getvalue().decode(errors="replace"))
                    except BaseException as exc:  # reported by the calling test
                        failures.append(exc)

                watcher = threading.Thread(target=run_watch, daemon=True)
                watcher.start()
            try:
                self._command.main(args=list(args), prog_name="runtools")
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            finally:
                sys.stdout.flush()  # as a process's exit would
                sys.stderr.flush()
                if watcher is not None:
                    watcher.join(timeout=60)
            out = stdout.getvalue().decode(errors="replace")
            err = stderr.getvalue().decode(errors="replace")
        if failures:
            raise failures[0]
        ran = Ran(tuple(args), code, out, err)
        if check and code != 0:
            raise AssertionError(f"runtools {' '.join(args)} exited {code}: {err}")
        return ran
