"""The error tree: what each error is on the wire, and what it is to an ``except``."""

from __future__ import annotations

import pytest

from runtools.server.domain import errors
from runtools.server.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    SandboxError,
    SandboxFileTooLarge,
    SandboxNotFound,
    SandboxPathRejected,
    SandboxProcessLimit,
    SandboxStateConflict,
    SandboxUnavailable,
    ServiceError,
    ServiceUnavailable,
)

#: Each sandbox error, the kind it is, and what it says on the wire (pinned: clients
#: match on these).
SANDBOX_KINDS = [
    (SandboxNotFound, NotFound, 404, "not_found", "Sandbox not found"),
    (SandboxStateConflict, Conflict, 409, "conflict", "Sandbox is not in a state that allows this"),
    (
        SandboxProcessLimit,
        Conflict,
        409,
        "process_limit_reached",
        "The sandbox is at its process limit",
    ),
    (SandboxPathRejected, InvalidRequest, 400, "invalid_request", "Path is outside the sandbox"),
    (SandboxFileTooLarge, PayloadTooLarge, 413, "payload_too_large", "File too large"),
    (
        SandboxUnavailable,
        ServiceUnavailable,
        503,
        "sandbox_unavailable",
        "Sandbox isolation is not available on this host",
    ),
]


@pytest.mark.parametrize(
    ("error", "kind", "status", "code", "message"),
    SANDBOX_KINDS,
    ids=[k[0].__name__ for k in SANDBOX_KINDS],
)
def test_each_sandbox_error_is_the_kind_it_renders_as(
    error: type[SandboxError], kind: type[ServiceError], status: int, code: str, message: str
) -> None:
    raised = error()
    assert isinstance(raised, kind)
    assert isinstance(raised, SandboxError)
    assert (raised.status_code, raised.code, raised.message) == (status, code, message)
    assert raised.status_code == kind.status_code
    with pytest.raises(kind):
        raise error("sandbox sandbox-abc not found")


def test_a_bare_sandbox_error_is_a_failure_of_the_driver() -> None:
    raised = SandboxError()
    assert (raised.status_code, raised.code, raised.message) == (
        500,
        "sandbox_error",
        "Sandbox operation failed",
    )


def _drawn_parents(tree: str) -> dict[str, str]:
    """Class name to the name of the row it hangs from, in the docstring's drawing."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for row in tree.splitlines():
        if "── " in row:
            depth = row.index("── ")
            name = row[depth + 3 :].split()[0]
        elif row.strip().startswith("ServiceError "):
            depth, name = -1, "ServiceError"
        else:
            continue
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_tree_in_the_docstring_is_the_class_tree() -> None:
    parents = _drawn_parents(errors.__doc__ or "")
    shown = {n for n in errors.__all__ if issubclass(getattr(errors, n), ServiceError)}
    assert set(parents) | {"ServiceError"} == shown
    # The one class beside the tree is never rendered: it is not a ServiceError.
    assert set(errors.__all__) - shown == {"HeldElsewhere"}
    for name, parent in parents.items():
        # The first base is the kind: it decides the status and the code.
        assert getattr(errors, name).__bases__[0] is getattr(errors, parent), name
