"""Wire messages of the RPC layer (JSON bodies, msgspec structs)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Request", "Reply", "ErrorBody", "Event", "encode", "decode_request", "decode_reply", "decode_event", "roundtrip"]


class Request(msgspec.Struct, omit_defaults=True):
    """A call or cast: ``args`` are the handler's keyword arguments."""

    method: str
    args: dict[str, Any] = {}
    sender: str = ""
    # Absolute deadline (ms since the epoch) after which the caller no longer waits; 0 = none.
    deadline_ms: int = 0


class ErrorBody(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    #: Structured facts the caller may act on (the error's contract says which); absent when none.
    details: dict[str, Any] | None = None


class Reply(msgspec.Struct, omit_defaults=True):
    result: Any = None
    error: ErrorBody | None = None


class Event(msgspec.Struct, omit_defaults=True):
    topic: str
    payload: Any = None
    sender: str = ""


_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(Request)
_reply_decoder = msgspec.json.Decoder(Reply)
_event_decoder = msgspec.json.Decoder(Event)
_any_decoder = msgspec.json.Decoder()

encode = _encoder.encode
decode_request = _request_decoder.decode
decode_reply = _reply_decoder.decode
decode_event = _event_decoder.decode


def roundtrip(value: Any) -> Any:
    """Encode to JSON and back: what would arrive on the other side of the wire."""
    return _any_decoder.decode(_encoder.encode(value))
