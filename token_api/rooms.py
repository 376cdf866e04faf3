"""Room configuration: what a room allows (roles, participant limit, views) and OWT's defaults.

JSON field names follow OWT (``participantLimit``); the controllers read this shape through the
RPC service ``rooms`` (``get_room``).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from credentials import SafeText, check_safe, safe_pattern

__all__ = [
    "RoomId",
    "RoleName",
    "Media",
    "Role",
    "RoomRecord",
    "RoomAnswer",
    "RoomOptions",
    "CreateRoom",
    "UpdateRoom",
    "default_roles",
    "default_views",
    "default_room",
    "room_from_create",
    "room_with_update",
    "room_json",
]

#: A room id: 1–128 characters, no control or invisible characters (:mod:`credentials.names`), no
#: ``/`` (it is a path segment).
RoomId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=safe_pattern("/"), examples=["lobby"])]
RoleName = Annotated[SafeText, msgspec.Meta(min_length=1, max_length=64)]
_RoomName = Annotated[SafeText, msgspec.Meta(min_length=1, max_length=128)]
_Limit = Annotated[int, msgspec.Meta(ge=-1, extra_json_schema={"not": {"const": 0}})]
_MAX_ROLES = 64
_MAX_VIEWS = 32
# What the JSON Schema of a view says; __post_init__ checks it (and that labels are unique).
_VIEW_SCHEMA = {"required": ["label"],
                "properties": {"label": {"type": "string", "minLength": 1, "pattern": safe_pattern()}}}


class Media(msgspec.Struct, forbid_unknown_fields=True):
    audio: bool = False
    video: bool = False


class Role(msgspec.Struct, forbid_unknown_fields=True):
    role: RoleName
    publish: Media = msgspec.field(default_factory=Media)
    subscribe: Media = msgspec.field(default_factory=Media)


#: At least one role, at most ``_MAX_ROLES``, names unique (checked by :class:`RoomRecord`).
_Roles = Annotated[list[Role], msgspec.Meta(min_length=1, max_length=_MAX_ROLES)]
#: At most ``_MAX_VIEWS`` views, each with a label, labels unique (checked by :class:`RoomRecord`).
_View = Annotated[dict[str, Any], msgspec.Meta(extra_json_schema=_VIEW_SCHEMA)]
_Views = Annotated[list[_View], msgspec.Meta(max_length=_MAX_VIEWS)]


def default_roles() -> list[Role]:
    """OWT's default roles (reference §2.4)."""
    both = Media(audio=True, video=True)
    return [
        Role("presenter", publish=both, subscribe=both),
        Role("viewer", subscribe=both),
        Role("audio_only_presenter", publish=Media(audio=True), subscribe=Media(audio=True)),
        Role("video_only_viewer", subscribe=Media(video=True)),
        Role("sip", publish=both, subscribe=both),
    ]


def default_views() -> list[dict[str, Any]]:
    return [{"label": "common"}]


def _check_limit(limit: int) -> None:
    if limit == 0:
        raise ValueError("participantLimit must be -1 (unlimited) or a positive integer")


def _check_roles(roles: list[Role]) -> None:
    if not roles:
        raise ValueError("a room needs at least one role")
    if len(roles) > _MAX_ROLES:
        raise ValueError(f"a room has at most {_MAX_ROLES} roles")
    names = [r.role for r in roles]
    if len(set(names)) != len(names):
        raise ValueError("role names must be unique")


def _check_views(views: list[dict[str, Any]]) -> None:
    if len(views) > _MAX_VIEWS:
        raise ValueError(f"a room has at most {_MAX_VIEWS} views")
    labels = []
    for view in views:
        label = view.get("label")
        if not isinstance(label, str) or not label:
            raise ValueError("every view needs a non-empty string label")
        check_safe(label, "a view label")
        labels.append(label)
    if len(set(labels)) != len(labels):
        raise ValueError("view labels must be unique")


class RoomRecord(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A room's stored configuration, as ``get_room`` returns it."""

    id: RoomId
    name: _RoomName
    participant_limit: _Limit = -1
    roles: _Roles = msgspec.field(default_factory=default_roles)
    views: _Views = msgspec.field(default_factory=default_views)

    def __post_init__(self) -> None:
        _check_limit(self.participant_limit)
        _check_roles(self.roles)
        _check_views(self.views)

    def has_role(self, role: str) -> bool:
        return any(r.role == role for r in self.roles)


class RoomAnswer(RoomRecord, kw_only=True):
    """A room as the REST API shows it: :class:`RoomRecord` plus OWT's ``_id`` (the same as ``id``)."""

    owt_id: RoomId = msgspec.field(name="_id")


class RoomOptions(msgspec.Struct, kw_only=True, rename="camel"):
    """The options of ``POST /v1/rooms``; OWT's other options (``mediaIn``, …) are ignored."""

    participant_limit: _Limit | msgspec.UnsetType = msgspec.UNSET
    roles: _Roles | msgspec.UnsetType = msgspec.UNSET
    views: _Views | msgspec.UnsetType = msgspec.UNSET


class CreateRoom(msgspec.Struct, kw_only=True):
    """Body of ``POST /v1/rooms``: OWT's ``{name, options}``; ``id`` is our addition."""

    name: _RoomName
    options: RoomOptions = msgspec.field(default_factory=RoomOptions)
    id: RoomId | msgspec.UnsetType = msgspec.UNSET


class UpdateRoom(RoomOptions, kw_only=True):
    """Body of ``PUT /v1/rooms/{id}``: the fields given replace the stored ones."""

    name: _RoomName | msgspec.UnsetType = msgspec.UNSET


def default_room(room_id: str) -> RoomRecord:
    return RoomRecord(id=room_id, name=room_id)


def _apply(room: RoomRecord, changes: RoomOptions, **extra: Any) -> RoomRecord:
    fields = msgspec.to_builtins(room)
    fields.update(msgspec.to_builtins(changes))
    fields.update(extra)
    # convert() re-runs every check of RoomRecord, so an invalid combination is refused as a whole.
    return msgspec.convert(fields, RoomRecord)


def room_from_create(body: CreateRoom, room_id: str) -> RoomRecord:
    return _apply(RoomRecord(id=room_id, name=body.name), body.options)


def room_with_update(room: RoomRecord, body: UpdateRoom) -> RoomRecord:
    return _apply(room, body)


def room_json(room: RoomRecord) -> dict[str, Any]:
    """A room as the REST API shows it (:class:`RoomAnswer`): the ``get_room`` shape plus OWT's ``_id``."""
    fields: dict[str, Any] = msgspec.to_builtins(room)
    fields["_id"] = room.id
    # Through the answer's own type, so what is sent is what the OpenAPI document describes.
    shown: dict[str, Any] = msgspec.to_builtins(msgspec.convert(fields, RoomAnswer))
    return shown
