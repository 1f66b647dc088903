"""The sandbox state machine: which actions each status allows, and what it advises."""

from __future__ import annotations

import pytest

from runtools.server.domain.errors import Conflict
from runtools.server.services.sandboxes.states import (
    LIVE,
    Action,
    SandboxStatus,
    refusal,
    require,
)

S = SandboxStatus


def test_only_a_running_sandbox_runs_commands_and_files() -> None:
    for status in S:
        allowed = refusal(Action.EXEC, status, "x") is None
        assert allowed == (status == S.RUNNING)
        assert (refusal(Action.FILES, status, "x") is None) == allowed


def test_exec_on_paused_says_resume_it_first() -> None:
    with pytest.raises(Conflict) as raised:
        require(Action.EXEC, S.PAUSED, "my-env")
    assert "resume it first" in raised.value.message
    assert "/v1/sandboxes/my-env/resume" in raised.value.message


@pytest.mark.parametrize(
    ("action", "status", "advice"),
    [
        (Action.PAUSE, S.PAUSED, "already paused"),
        (Action.RESUME, S.RUNNING, "nothing to resume"),
        (Action.DESTROY, S.DESTROYED, "already destroyed"),
        (Action.EXEC, S.DESTROYED, "create a new sandbox"),
        (Action.EXEC, S.FAILED, "destroy it"),
        (Action.EXEC, S.ERROR, "destroy it"),
        (Action.PAUSE, S.RESUMING, "try again in a moment"),
        (Action.DESTROY, S.DESTROYING, "try again in a moment"),
        (Action.EXEC, S.CREATING, "try again in a moment"),
    ],
)
def test_every_refusal_says_what_to_do(action: Action, status: S, advice: str) -> None:
    message = refusal(action, status, "x")
    assert message is not None
    assert advice in message


def test_destroy_is_possible_from_every_settled_status_but_destroyed() -> None:
    for status in (S.RUNNING, S.PAUSED, S.FAILED, S.ERROR):
        require(Action.DESTROY, status, "x")


def test_failed_and_destroyed_sandboxes_do_not_count_against_the_quota() -> None:
    assert S.FAILED not in LIVE
    assert S.DESTROYED not in LIVE
    assert {S.RUNNING, S.PAUSED, S.CREATING, S.ERROR} <= LIVE
