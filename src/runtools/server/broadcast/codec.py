"""Credential events on the wire between nodes: compact JSON, ids only, never a secret."""

from __future__ import annotations

import json
from dataclasses import dataclass

from runtools.server.domain.events import CredentialEvent, EventKind


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event and the node that published it (so a node can skip its own echo)."""

    event: CredentialEvent
    origin: str


class UndecodableEvent(ValueError):
    """A payload on the channel that is not one of ours."""


def encode(event: CredentialEvent, origin: str) -> str:
    fields = {
        "kind": event.kind.value,
        "orgId": event.org_id,
        "keyId": event.key_id,
        "userId": event.user_id,
        "sessionId": event.session_id,
        "origin": origin,
    }
    return json.dumps({k: v for k, v in fields.items() if v is not None}, separators=(",", ":"))


def decode(payload: str | bytes) -> Envelope:
    try:
        fields = json.loads(payload)
        event = CredentialEvent(
            kind=EventKind(fields["kind"]),
            org_id=str(fields["orgId"]),
            key_id=fields.get("keyId"),
            user_id=fields.get("userId"),
            session_id=fields.get("sessionId"),
        )
        return Envelope(event, str(fields.get("origin", "")))
    except (ValueError, KeyError, TypeError) as exc:
        raise UndecodableEvent("not a credential event") from exc
