"""``POST /v1/secret-scanning/github``: GitHub reports our keys it found in public.

GitHub's secret scanning partner program calls this unauthenticated: the
report's signature (``Github-Public-Key-Identifier``,
``Github-Public-Key-Signature``) is its authentication, checked by the
service over the raw body before anything is read from it. The reply is
GitHub's partner format (a bare JSON array, not our envelope); refusals are
in the envelope like every other.
"""

from __future__ import annotations

import re
from typing import Annotated

import anyio.to_thread
from pydantic import BaseModel, Field
from starlette.requests import Request

from runtools.server.api.context import request_context, runtime_of
from runtools.server.api.guards import PUBLIC_RATE_LIMITED
from runtools.server.api.middleware import BodyLimit
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.secret_scanning import (
    FALSE_POSITIVE,
    MAX_REPORT_BYTES,
    MAX_TOKENS,
    TRUE_POSITIVE,
)
from runtools.server.services.secret_scanning import SecretScanningService

router = tagged_router("secret-scanning", "/v1/secret-scanning")

GITHUB_PATH = "/v1/secret-scanning/github"


def body_limits() -> list[BodyLimit]:
    """A report is small: anything larger is refused (413) before it is read."""
    return [BodyLimit("POST", re.compile(re.escape(GITHUB_PATH)), MAX_REPORT_BYTES)]


class TokenLabel(BaseModel):
    """Our answer about one reported token (GitHub's partner feedback format)."""

    token_raw: str
    token_type: str
    label: str = Field(json_schema_extra={"enum": [TRUE_POSITIVE, FALSE_POSITIVE]})


REPORT_SCHEMA = {
    "type": "array",
    "maxItems": MAX_TOKENS,
    "items": {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {"type": "string", "description": "The string that matched our key format"},
            "type": {"type": "string", "description": "The secret type it matched"},
            "url": {"type": "string", "description": "Where GitHub found it"},
            "source": {"type": "string", "examples": ["content", "commit", "npm"]},
        },
    },
}


@router.post(
    "/github",
    name="github",
    response_model=list[TokenLabel],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": REPORT_SCHEMA}},
        },
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": True,
                "schema": {"type": "string", "maxLength": 512},
                "description": description,
            }
            for name, description in (
                ("Github-Public-Key-Identifier", "Which of GitHub's published keys signed"),
                (
                    "Github-Public-Key-Signature",
                    "Base64 DER ECDSA P-256 SHA-256 signature over the raw body",
                ),
            )
        ],
    },
)
async def github_report(
    request: Request, _: Annotated[None, PUBLIC_RATE_LIMITED]
) -> list[TokenLabel]:
    """GitHub's secret scanning partner report: revoke each live key of ours it names.

    Authenticated by its signature (GitHub's published ECDSA keys); a missing one is
    a 400, one that does not verify a 401, and nothing is revoked. Each token is
    answered ``true_positive`` (a key of ours, revoked now with ``revokedReason:
    leaked`` and audited with the URL and source, or already revoked for this
    reason) or ``false_positive`` (anything else).
    """
    body = await request.body()
    service: SecretScanningService = runtime_of(request).secret_scanning
    labels = await anyio.to_thread.run_sync(
        lambda: service.report(
            body,
            key_identifier=request.headers.get("github-public-key-identifier"),
            signature=request.headers.get("github-public-key-signature"),
            context=request_context(request),
        )
    )
    return [
        TokenLabel(token_raw=one.token_raw, token_type=one.token_type, label=one.label)
        for one in labels
    ]
