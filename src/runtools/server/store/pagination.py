"""Cursor pagination over time-ordered ids, newest first.

A cursor is the opaque, URL-safe encoding of the last id a page returned.
A cursor that does not decode to an id is the client's error (400).
``Page`` and the limits are the domain's (``domain/paging.py``), named here
too for the modules that import them from here.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from runtools.server.domain.errors import InvalidRequest
from runtools.server.domain.paging import DEFAULT_LIMIT, MAX_LIMIT, Page

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "decode_cursor", "encode_cursor", "paginate"]

T = TypeVar("T")

_ID = re.compile(r"^[a-z]+_[0-9A-Za-z]{22}$")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidRequest("Invalid cursor: pass back nextCursor unchanged") from exc
    if not _ID.match(value):
        raise InvalidRequest("Invalid cursor: pass back nextCursor unchanged")
    return value


def paginate(
    session: Session,
    query: Select[tuple[T]],
    id_column: InstrumentedAttribute[Any],
    *,
    limit: int,
    cursor: str | None,
) -> Page[T]:
    if cursor is not None:
        query = query.where(id_column < decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, encode_cursor(getattr(rows[-1], id_column.key)))
    return Page(rows, None)
