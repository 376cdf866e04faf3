"""Reading request bodies into msgspec Structs, with readable 4xx for whatever a client sends.

Before a body is decoded it must be UTF-8 and nest arrays and objects at most ``max_json_depth``
deep (a deep enough value would exhaust the decoder's recursion, and then everything that walks
it); its size is bounded by ``client_max_size`` and the time it takes to arrive by
``body_timeout`` (:mod:`edge.protocol`).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from credentials import readable_validation
from edge import BodyTimeout

from .app_keys import SETTINGS
from .errors import BadRequest, RequestTimeout

__all__ = ["read_body", "nesting_exceeds"]

_T = TypeVar("_T")

# Strings (with their escapes) hold no structure; of the rest only the brackets count.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether JSON text ``raw`` nests arrays and objects more than ``limit`` deep."""
    depth = 0
    for byte in _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _whole_numbers(value: Any) -> Any:
    """``value`` with every float that is a whole number as an ``int``: in JSON (and its Schema) ``2.0``
    is the integer ``2``, which the decoder alone would refuse where an integer is expected."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    return value


async def read_body(request: web.Request, kind: type[_T]) -> _T:
    """The JSON body as ``kind``; 400 when it is not UTF-8 JSON of that shape or nests too deep,
    413 when too large, 408 when it does not arrive in time.

    An empty body counts as ``{}`` (so a type whose fields all have defaults accepts it).
    """
    try:
        raw = await request.read()  # raises HTTPRequestEntityTooLarge beyond client_max_size
    except BodyTimeout:
        raise RequestTimeout("The request body did not arrive in time") from None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The body is not UTF-8 (byte {exc.start})", reason="invalid_utf8") from None
    limit = request.app[SETTINGS].max_json_depth
    if nesting_exceeds(raw, limit):
        raise BadRequest(f"The body nests arrays and objects more than {limit} deep", reason="too_deep")
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        whole = _whole_numbers(msgspec.json.decode(raw or b"{}"))
        try:
            return msgspec.convert(whole, kind)
        except msgspec.ValidationError:
            raise BadRequest(f"Invalid body: {readable_validation(str(exc))}", reason="invalid_body") from None
    except msgspec.DecodeError:
        raise BadRequest("Failed to parse JSON body", reason="invalid_json") from None
    except RecursionError:
        raise BadRequest("The body nests too deep", reason="too_deep") from None
