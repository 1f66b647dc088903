"""The wire's envelopes: ``{"data", "meta"}`` and ``{"error"}``, camelCase."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel
from starlette.requests import Request

from runtools.server.api.context import request_id_of

T = TypeVar("T")


class WireModel(BaseModel):
    """Base of every JSON body: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RequestModel(WireModel):
    """Base of request bodies: unknown fields are refused, so a typo
    (``expiresin`` for ``expiresIn``) can never silently mint a key that
    does not expire (the snake_case name, ``expires_in``, is the field
    itself); and types are strict, so ``"isTest": "yes"`` or
    ``"rateLimit": "7"`` is a 400, never a guess."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True
    )

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)


def refuse_nul(value: T) -> T:
    """A validator: no text holds a NUL (PostgreSQL cannot store one, so no database does)."""
    if contains_nul(value):
        raise ValueError("must not contain NUL characters")
    return value


def contains_nul(value: object) -> bool:
    """Whether a string, or any string inside a list or dict, holds a NUL character."""
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    return False


class Meta(WireModel):
    request_id: str


def meta_of(request: Request) -> Meta:
    """The ``meta`` of a reply to ``request``: its request id."""
    return Meta(request_id=request_id_of(request))


class ListMeta(Meta):
    has_more: bool
    next_cursor: str | None


class Envelope(WireModel, Generic[T]):
    data: T
    meta: Meta


class CreatedEnvelope(Envelope[T], Generic[T]):
    """A create response that also tells the caller something (e.g. store the key now)."""

    message: str


class ListEnvelope(WireModel, Generic[T]):
    data: list[T]
    meta: ListMeta


class ErrorBody(WireModel):
    code: str
    message: str
    request_id: str


class ErrorEnvelope(WireModel):
    error: ErrorBody


def error_body(code: str, message: str, request_id: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "requestId": request_id}}


#: Documented on every route, so clients and fuzzers know the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Invalid request",
        401: "Invalid or missing authentication",
        403: "Missing scope or role",
        404: "Not found",
        405: "Method not allowed",
        409: "Conflict with the object's current state",
        413: "Request body too large",
        415: "A JSON body sent without Content-Type: application/json",
        422: "Unprocessable request",
        429: "Too many requests",
        431: "Request headers too large",
        500: "Internal error",
        503: "Service temporarily unavailable",
    }.items()
}
