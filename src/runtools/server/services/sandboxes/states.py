"""A sandbox's statuses and which actions each one allows: pure, no I/O.

::

    creating ──> running <──> pausing ──> paused ──> resuming ──> running
       │            │                       │
       └─> failed   └──────> destroying <───┘  (from any status but destroyed)
                                  │
                                  └─> destroyed

``failed``: the sandbox's processes are gone (creation failed, they died,
or died while the service was stopped); its resources have been freed. ``error``: a
pause, resume or destroy failed half-way; only ``destroy`` is allowed.
``pending`` is part of the wire vocabulary but never stored here: a
sandbox is created synchronously.

An action refused in the current status raises ``Conflict`` (409) with a
message saying what to do instead.

Not here: who may act (``service``), storing a status (the repository's
conditional ``transition``), what the driver does for an action.
"""

from __future__ import annotations

from enum import StrEnum

from runtools.server.domain.errors import Conflict

__all__ = ["LIVE", "SETTLED", "Action", "SandboxStatus", "refusal", "require"]


class SandboxStatus(StrEnum):
    PENDING = "pending"
    CREATING = "creating"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    FAILED = "failed"
    ERROR = "error"


class Action(StrEnum):
    EXEC = "exec"
    FILES = "files"
    PAUSE = "pause"
    RESUME = "resume"
    DESTROY = "destroy"
    KILL = "kill"


S = SandboxStatus

#: Statuses that count against the organization's quota: they hold, or may
#: still hold, processes and memory on a node.
LIVE = frozenset(set(S) - {S.DESTROYED, S.FAILED})
#: Statuses no action is in progress in.
SETTLED = frozenset({S.RUNNING, S.PAUSED, S.DESTROYED, S.FAILED, S.ERROR})

_ALLOWED: dict[Action, frozenset[SandboxStatus]] = {
    Action.EXEC: frozenset({S.RUNNING}),
    Action.FILES: frozenset({S.RUNNING}),
    Action.PAUSE: frozenset({S.RUNNING}),
    Action.RESUME: frozenset({S.PAUSED}),
    Action.DESTROY: frozenset({S.RUNNING, S.PAUSED, S.FAILED, S.ERROR}),
    Action.KILL: frozenset({S.RUNNING}),
}


def refusal(action: Action, status: str, ref: str) -> str | None:
    """Why ``action`` is not possible in ``status``, phrased as what to do; None if it is."""
    if status in _ALLOWED[action]:
        return None
    subject = f"Sandbox {ref}"
    if status == S.DESTROYED:
        if action is Action.DESTROY:
            return f"{subject} is already destroyed"
        return f"{subject} has been destroyed; create a new sandbox"
    if status in (S.PENDING, S.CREATING, S.PAUSING, S.RESUMING, S.DESTROYING):
        return f"{subject} is {status}; try again in a moment"
    if status == S.FAILED:
        return f"{subject} has failed; destroy it and create a new sandbox"
    if status == S.ERROR:
        return f"{subject} is in error; destroy it and create a new sandbox"
    if status == S.PAUSED:
        if action is Action.PAUSE:
            return f"{subject} is already paused"
        return f"{subject} is paused; resume it first (POST /v1/sandboxes/{ref}/resume)"
    if status == S.RUNNING and action is Action.RESUME:
        return f"{subject} is already running; there is nothing to resume"
    return f"{subject} is {status}; {action} is not possible now"


def require(action: Action, status: str, ref: str) -> None:
    message = refusal(action, status, ref)
    if message is not None:
        raise Conflict(message)
