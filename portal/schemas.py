"""Request payloads (OWT protocol 1.2 plus the switchboard extension) as msgspec schemas.

Every client payload is converted here; anything that does not fit is an ``invalid request``
refusal and nothing else happens.  Field names are the wire's camelCase.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec

from credentials import SafeText, readable_validation

from .errors import invalid_request

__all__ = [
    "Id",
    "UserAgent",
    "LoginRequest",
    "ReloginRequest",
    "AckRequest",
    "TextRequest",
    "PublishRequest",
    "SubscribeRequest",
    "IdRequest",
    "StreamControlRequest",
    "SubscriptionControlRequest",
    "SoacRequest",
    "parse",
]

# \A…\Z, not ^…$: "$" also matches before a final newline.
Id = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-zA-Z-]+\Z", max_length=128)]
#: Request ids and ``text`` targets are echoed to others and logged: no control or invisible
#: characters (:mod:`credentials.names`).
RequestId = Annotated[SafeText, msgspec.Meta(min_length=1, max_length=128)]
Target = Annotated[SafeText, msgspec.Meta(min_length=1, max_length=128)]
Seq = Annotated[int, msgspec.Meta(ge=0)]
#: A client-chosen secret that lets only the connection that sent a relogin retry it (visible ASCII).
RetryKey = Annotated[str, msgspec.Meta(min_length=16, max_length=128, pattern=r"^[\x21-\x7e]+$")]


class _Payload(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Unknown fields are ignored (clients add their own), known ones are checked."""


class Sdk(_Payload, kw_only=True):
    type: str = ""
    version: str = ""


class Extension(_Payload, kw_only=True):
    seq: bool = False


class UserAgent(_Payload, kw_only=True):
    sdk: Sdk | None = None
    switchboard: Extension | None = None


class LoginRequest(_Payload, kw_only=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
    user_agent: UserAgent = msgspec.field(default_factory=UserAgent)
    protocol: str | None = None
    extension: bool = False

    @property
    def wants_extension(self) -> bool:
        ext = self.user_agent.switchboard
        return self.extension or (ext is not None and ext.seq)


class ReloginRequest(_Payload, kw_only=True):
    """The extension form; the OWT form is a bare ticket string."""

    ticket: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
    last_seq: Seq | None = None
    #: Sent again, unchanged, when the client repeats this relogin because its answer never came.
    retry_key: RetryKey | None = None


class AckRequest(_Payload, kw_only=True):
    seq: Seq


class _Relayed(_Payload, kw_only=True):
    request_id: RequestId | None = None


class TextRequest(_Relayed, kw_only=True):
    to: Target
    message: Any


class TransportSpec(_Payload, kw_only=True):
    type: Literal["webrtc", "quic"] = "webrtc"
    id: Id | None = None


Source = Literal["mic", "screen-cast", "file", "raw-file", "encoded-file", "mixed", "camera"]


class PublishTrack(_Payload, kw_only=True):
    type: Literal["audio", "video"]
    mid: str | None = None
    source: Source | None = None


class PublishMedia(_Payload, kw_only=True):
    tracks: Annotated[list[PublishTrack], msgspec.Meta(min_length=1, max_length=16)]


class PublishRequest(_Relayed, kw_only=True):
    media: PublishMedia | None
    attributes: dict[str, Any] | None = None
    data: bool = False
    transport: TransportSpec | None = None

    def __post_init__(self) -> None:
        if self.media is None and not self.data:
            raise ValueError("publish needs media or data")


class SubscribeTrack(_Payload, kw_only=True):
    type: Literal["audio", "video"]
    from_: Id = msgspec.field(name="from")
    mid: str | None = None
    format: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None


class SubscribeMedia(_Payload, kw_only=True):
    tracks: Annotated[list[SubscribeTrack], msgspec.Meta(min_length=1, max_length=16)]


class SubscribeData(_Payload, kw_only=True):
    from_: Id = msgspec.field(name="from")


class SubscribeRequest(_Relayed, kw_only=True):
    media: SubscribeMedia | None
    data: SubscribeData | bool | None = None
    transport: TransportSpec | None = None

    def __post_init__(self) -> None:
        if self.media is None and not self.data:
            raise ValueError("subscribe needs media or data")


class IdRequest(_Relayed, kw_only=True):
    """``unpublish`` and ``unsubscribe``."""

    id: Id


class StreamControlRequest(_Relayed, kw_only=True):
    id: Id
    operation: Literal["mix", "unmix", "set-region", "get-region", "pause", "play"]
    data: Any = None


class SubscriptionControlRequest(_Relayed, kw_only=True):
    id: Id
    operation: Literal["update", "pause", "play", "querybwe"]
    data: Any = None


class Signaling(_Payload, kw_only=True):
    type: Literal["offer", "answer", "candidate", "removed-candidates"]
    sdp: str | None = None
    candidate: dict[str, Any] | str | None = None
    candidates: list[Any] | None = None


class SoacRequest(_Relayed, kw_only=True):
    id: Id
    signaling: Signaling


S = TypeVar("S", bound=msgspec.Struct)


def parse(payload: Any, schema: type[S]) -> S:
    """``payload`` as ``schema`` or an ``invalid request`` refusal naming the first problem."""
    if not isinstance(payload, dict):
        raise invalid_request("payload must be an object")
    try:
        return msgspec.convert(payload, schema)
    except msgspec.ValidationError as exc:
        raise invalid_request(readable_validation(str(exc))) from None
