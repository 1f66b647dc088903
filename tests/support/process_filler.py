"""A program that fills a sandbox's process limit and holds it, for deterministic tests.

It forks children that ``exec`` a long ``sleep`` (small: a shell fork bomb's
timing and memory depend on the machine) until the pids controller refuses,
and keeps retrying, so a slot freed by anything else is taken again within a
few milliseconds; nothing it started ever exits.
"""

from __future__ import annotations

__all__ = ["FILL_COMMAND"]

_SCRIPT = """
import os, time
while True:
    try:
        if os.fork() == 0:
            os.execv("/usr/bin/sleep", ["sleep", "3600"])
    except BlockingIOError:
        time.sleep(0.01)
"""

#: A command that starts the filler in the background and returns at once.
FILL_COMMAND = f"python3 -c '{_SCRIPT}' >/dev/null 2>&1 &"
