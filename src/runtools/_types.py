"""Small typing helpers shared by the resources."""

from __future__ import annotations

from typing import Final, final

__all__ = ["NOT_GIVEN", "NotGiven"]


@final
class NotGiven:
    """Marks an argument the caller left out, where ``None`` is a meaningful value.

    ``rt.api_keys.update(key_id, project_id=None)`` detaches a key from its
    project; leaving ``project_id`` out leaves the project alone.
    """

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()
