"""Reading request bodies into msgspec Structs, with readable 400s."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from aiohttp import web

from .errors import BadRequest

__all__ = ["read_body"]

_T = TypeVar("_T")


async def read_body(request: web.Request, kind: type[_T]) -> _T:
    """The JSON body as ``kind``; 400 when it is not JSON or not that shape, 413 when too large.

    An empty body counts as ``{}`` (so a type whose fields all have defaults accepts it).
    """
    raw = await request.read()  # raises HTTPRequestEntityTooLarge beyond client_max_size
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid body: {exc}", reason="invalid_body") from None
    except msgspec.DecodeError:
        raise BadRequest("Failed to parse JSON body", reason="invalid_json") from None
