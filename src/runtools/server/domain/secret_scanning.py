"""GitHub's secret scanning partner format: what a report holds and what we answer.

GitHub finds a string shaped like one of our keys in public code and POSTs a
JSON array of ``{"token", "type", "url", "source"}`` to our endpoint, signed
with one of its published ECDSA keys. We answer, per token, ``token_raw``,
``token_type`` and a ``label``: ``true_positive`` for a key of ours that was
live when reported (and is revoked now), ``false_positive`` for anything
else. Parsing is here; signatures and revocation are the service's
(``services/secret_scanning.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from runtools.server.domain.errors import InvalidRequest

__all__ = [
    "FALSE_POSITIVE",
    "LEAKED",
    "MAX_REPORT_BYTES",
    "MAX_TOKENS",
    "TRUE_POSITIVE",
    "ReportedToken",
    "parse_report",
]

#: ``revokedReason`` of a key revoked because it was found in public.
LEAKED = "leaked"
TRUE_POSITIVE = "true_positive"
FALSE_POSITIVE = "false_positive"

#: A report larger than this is refused (413) before it is read.
MAX_REPORT_BYTES = 512 * 1024
#: Tokens one report may hold.
MAX_TOKENS = 1000
#: Longest ``token`` / ``type`` / ``url`` / ``source`` kept (a key of ours is 46 characters).
MAX_TOKEN = 1024
MAX_TYPE = 128
MAX_URL = 2048
MAX_SOURCE = 64


@dataclass(frozen=True)
class ReportedToken:
    """One match GitHub reports: the string, the secret type it matched, where it was seen."""

    token: str
    type: str
    url: str | None
    source: str | None


def _text(entry: dict[str, object], name: str, limit: int, *, required: bool) -> str | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidRequest(f"each reported token needs a string {name!r}")
    if len(value) > limit:
        raise InvalidRequest(f"{name!r} is longer than {limit} characters")
    return value


def parse_report(raw: bytes) -> list[ReportedToken]:
    """The tokens of a report's (already verified) body; a 400 naming what is wrong."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidRequest("The report must be a JSON array") from exc
    if not isinstance(document, list):
        raise InvalidRequest("The report must be a JSON array of {token, type, url, source}")
    if len(document) > MAX_TOKENS:
        raise InvalidRequest(f"A report holds at most {MAX_TOKENS} tokens")
    tokens: list[ReportedToken] = []
    for entry in document:
        if not isinstance(entry, dict):
            raise InvalidRequest("each reported token must be an object {token, type, url, source}")
        tokens.append(
            ReportedToken(
                token=_text(entry, "token", MAX_TOKEN, required=True) or "",
                type=_text(entry, "type", MAX_TYPE, required=False) or "",
                url=_text(entry, "url", MAX_URL, required=False),
                source=_text(entry, "source", MAX_SOURCE, required=False),
            )
        )
    return tokens
