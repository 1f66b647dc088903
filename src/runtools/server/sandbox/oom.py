"""Whom the kernel's OOM killer takes when a sandbox runs out of memory.

Inside a full sandbox every process is small: files in its ``/tmp`` (a
tmpfs) count against its memory but belong to no process. Left alone, the OOM
killer's pick can be bubblewrap or the sandbox's init, and the sandbox dies
with all its files. So commands run with a raised ``oom_score_adj`` (every
process they start inherits it) and are picked before the processes that
keep the sandbox up; the service's own helpers that write into a sandbox
are picked first of all. Scores are only ever raised, which needs no
privilege (lowering one needs ``CAP_SYS_RESOURCE``, which a service in a
container may lack). A sandbox user may lower its processes back to the
default; then it can only lose its own sandbox.

Raised scores also make sandboxed commands the host's first victims if the
whole host runs out of memory, before the service or its database.

Not here: the memory limits themselves (``cgroups``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["COMMAND_SCORE", "WRITER_SCORE", "scored"]

#: A command and everything it starts: before the sandbox's own processes (0).
#: Small: the kernel adds it as a share of the memory limit (100: a tenth), so
#: the upload writer (a whole limit) still goes first unless a command holds
#: nearly all of the sandbox's memory itself.
COMMAND_SCORE = 100
#: The service's helper writing an upload: before anything else.
WRITER_SCORE = 1000


def scored(score: int, argv: Sequence[str]) -> list[str]:
    """``argv``, run with ``oom_score_adj`` raised to ``score``."""
    return [
        "/bin/sh",
        "-c",
        f'printf %s {score} > /proc/self/oom_score_adj && exec "$@"',
        "sh",
        *argv,
    ]
