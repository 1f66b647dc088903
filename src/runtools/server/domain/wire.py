"""The shapes the server sends, made from the SDK's declarations of them.

A response shape is declared once, in the SDK (``runtools._models``): its
fields' names, camelCase aliases, types and docs. The SDK's model tolerates
what it does not know and what a server left out (every field but the
identity has a default). What the server sends must be stricter, so
``@sent_shape`` turns a subclass of an SDK model into the server's own:

- every field is required: forgetting one is the server's error, never a
  default on the wire;
- a field the SDK types ``Sent[T]`` (the server always sends it) is a plain
  ``T``, never null;
- unknown keyword arguments are ignored, like every server wire model's,
  and the fields' docs are their descriptions in /openapi.json.

The decorated class's methods are kept; its docstring, or else the SDK
model's, describes the shape. What must not live here: anything about HTTP
envelopes (``api/envelope.py``) or who may see a shape (the services).
"""

from __future__ import annotations

import functools
import inspect
import operator
import types
from typing import Annotated, Any, TypeVar, Union, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from runtools._models import ALWAYS_SENT, RunToolsModel

__all__ = ["sent_shape"]

ShapeT = TypeVar("ShapeT", bound=BaseModel)


class _Sent(BaseModel):
    """Configuration of every sent shape (listed last among its bases, so it wins)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=False,
    )


def sent_shape(declared: type[ShapeT]) -> type[ShapeT]:
    """Class decorator: the server's shape of the SDK model the class derives from."""
    fields: dict[str, Any] = {name: _required(info) for name, info in declared.model_fields.items()}
    shape = create_model(
        declared.__name__,
        __base__=(declared, _Sent),
        __module__=declared.__module__,
        __doc__=_description(declared),
        **fields,
    )
    return cast("type[ShapeT]", shape)


def _description(declared: type[BaseModel]) -> str | None:
    """The class's docstring, else that of the SDK model it derives from."""
    for cls in declared.__mro__:
        if cls is RunToolsModel:
            break
        doc = cls.__dict__.get("__doc__")
        if doc:
            return inspect.cleandoc(doc)
    return None


def _required(info: FieldInfo) -> tuple[Any, FieldInfo]:
    """The field's annotation, ``Sent[T]`` made ``T``, and its doc; no default."""
    annotation = info.annotation
    metadata = [item for item in info.metadata if item is not ALWAYS_SENT]
    if len(metadata) < len(info.metadata):
        annotation = _without_none(annotation)
    if metadata:  # constraints (lengths, bounds) stay the SDK's
        annotated: Any = Annotated
        annotation = annotated[(annotation, *metadata)]
    return annotation, Field(description=info.description)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) not in (Union, types.UnionType):
        return annotation
    kept = [arg for arg in get_args(annotation) if arg is not type(None)]
    return functools.reduce(operator.or_, kept)
