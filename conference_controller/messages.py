"""Validated inputs of the controller: room configuration and the shapes clients send.

Unknown fields are accepted (clients and the token API may send more than we read); missing or
mistyped ones fail with ``bad_arguments``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

from .errors import InvalidRequest

__all__ = [
    "ParticipantInit",
    "MediaPermission",
    "Permission",
    "RoleConfig",
    "RoomConfig",
    "PublishTrack",
    "PublishMedia",
    "TransportSpec",
    "PublishInfo",
    "SubscribeTrack",
    "SubscribeMedia",
    "SubscribeInfo",
    "PatchOp",
    "TrackSource",
    "parse",
    "parse_optional",
]

T = TypeVar("T")

TrackType = Literal["audio", "video"]
TrackSource = Literal["mic", "camera", "screen-cast", "file", "raw-file", "encoded-file", "mixed"]


class ParticipantInit(msgspec.Struct):
    id: str
    user: str
    role: str
    portal: str
    origin: dict[str, Any] = {}


class MediaPermission(msgspec.Struct, frozen=True):
    audio: bool = False
    video: bool = False


class Permission(msgspec.Struct, frozen=True):
    """Immutable, so the participants of a role share one (a change makes a new one)."""

    publish: MediaPermission = msgspec.field(default_factory=MediaPermission)
    subscribe: MediaPermission = msgspec.field(default_factory=MediaPermission)

    def allows(self, action: Literal["publish", "subscribe"], kind: str) -> bool:
        media: MediaPermission = getattr(self, action)
        return bool(getattr(media, kind, False))


class RoleConfig(msgspec.Struct):
    role: str
    publish: MediaPermission = msgspec.field(default_factory=MediaPermission)
    subscribe: MediaPermission = msgspec.field(default_factory=MediaPermission)

    def permission(self) -> Permission:
        return Permission(publish=self.publish, subscribe=self.subscribe)


class RoomConfig(msgspec.Struct):
    """What ``rooms.get_room`` answers (OWT field names)."""

    id: str
    name: str = ""
    participant_limit: int = msgspec.field(default=-1, name="participantLimit")
    roles: list[RoleConfig] = []
    views: list[Any] = []

    def role(self, name: str) -> RoleConfig | None:
        return next((role for role in self.roles if role.role == name), None)

    def view_labels(self) -> list[str]:
        labels = []
        for view in self.views:
            if isinstance(view, dict):
                labels.append(str(view.get("label", "")))
            else:
                labels.append(str(view))
        return labels


class PublishTrack(msgspec.Struct):
    type: TrackType
    source: TrackSource
    mid: str | None = None


class PublishMedia(msgspec.Struct):
    tracks: list[PublishTrack]


class TransportSpec(msgspec.Struct):
    type: str = "webrtc"
    id: str | None = None


class PublishInfo(msgspec.Struct):
    media: PublishMedia | None = None
    attributes: dict[str, Any] | None = None
    data: bool = False
    transport: TransportSpec | None = None


class SubscribeTrack(msgspec.Struct):
    type: TrackType
    from_: str = msgspec.field(name="from")
    mid: str | None = None
    parameters: dict[str, Any] | None = None
    format: dict[str, Any] | None = None


class SubscribeMedia(msgspec.Struct):
    tracks: list[SubscribeTrack]


class SubscribeInfo(msgspec.Struct):
    media: SubscribeMedia | None = None
    transport: TransportSpec | None = None
    data: Any = None


class PatchOp(msgspec.Struct):
    op: str
    path: str
    value: Any = None


def parse(value: Any, kind: type[T], what: str) -> T:
    """``value`` as ``kind``, or ``InvalidRequest`` naming ``what`` and the problem."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid {what}: {exc}") from None


def parse_optional(value: Any, kind: type[T], what: str) -> T | None:
    """Like :func:`parse`, with ``None`` allowed."""
    return None if value is None else parse(value, kind, what)
