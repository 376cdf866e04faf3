"""Coded errors of the controller: each reaches the caller as ``RpcRemoteError(code, message, details)``."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from contracts.controller import ResyncDetails
from rpc import ServiceError

__all__ = [
    "ControllerError",
    "InvalidRequest",
    "RoomFull",
    "InvalidRole",
    "RoomConfigUnavailable",
    "AlreadyJoined",
    "UnknownParticipant",
    "UnknownRoom",
    "Draining",
    "RoomClosed",
    "TicketMismatch",
    "NotCurrentPortal",
    "HoldExpired",
    "ResyncRequired",
    "UnknownTarget",
    "PermissionDenied",
    "NoMediaAgent",
    "MediaError",
    "UnknownStream",
    "UnknownSubscription",
    "UnknownTransport",
    "UnsupportedOperation",
    "InvalidJsonOp",
    "InvalidJsonPath",
    "InvalidJsonValue",
    "Unauthorized",
]


class ControllerError(ServiceError):
    """Root of the controller's coded errors; ``error_code`` is the wire code."""

    error_code: ClassVar[str] = "controller_error"
    default_message: ClassVar[str] = ""

    def __init__(self, message: str = "") -> None:
        super().__init__(self.error_code, message or self.default_message or self.error_code.replace("_", " "))


class InvalidRequest(ControllerError):
    error_code = "bad_arguments"


class RoomFull(ControllerError):
    error_code = "room_full"
    default_message = "room is full"


class InvalidRole(ControllerError):
    error_code = "invalid_role"


class RoomConfigUnavailable(ControllerError):
    error_code = "room_config_unavailable"


class AlreadyJoined(ControllerError):
    error_code = "already_joined"


class UnknownParticipant(ControllerError):
    error_code = "unknown_participant"


class RoomReloading(ControllerError):
    """The participant's room lost a journal write and is being rebuilt here: try again shortly."""

    error_code = "room_reloading"


class UnknownRoom(ControllerError):
    error_code = "unknown_room"


class Draining(ControllerError):
    """``take_over`` of a room that is not here, refused by a controller that is drained (its own
    rooms are moving away) or stopping: the caller places the room on another controller."""

    error_code = "controller_draining"
    default_message = "this controller is draining: place the room elsewhere"


class RoomClosed(ControllerError):
    """The room was destroyed between lookup and use (callers retry with a fresh room)."""

    error_code = "room_closed"


class TicketMismatch(ControllerError):
    error_code = "ticket_mismatch"
    default_message = "not the latest reconnection ticket"


class NotCurrentPortal(ControllerError):
    """A call for a participant from a portal that no longer serves it (it relogged in elsewhere)."""

    error_code = "not_current_portal"
    default_message = "the participant is connected through another portal"


class HoldExpired(ControllerError):
    error_code = "hold_expired"


class ResyncRequired(ControllerError):
    """The participant missed notifications that are gone: its details are a
    :class:`~contracts.controller.ResyncDetails`."""

    error_code = "resync_required"

    def __init__(self, missing_from: int, missing_to: int) -> None:
        super().__init__(f"missing {missing_from}..{missing_to}")
        self.details = msgspec.to_builtins(ResyncDetails(missing_from=missing_from, missing_to=missing_to))


class UnknownTarget(ControllerError):
    error_code = "unknown_target"


class PermissionDenied(ControllerError):
    error_code = "permission_denied"


class NoMediaAgent(ControllerError):
    error_code = "no_media_agent"
    default_message = "no media agent available"


class MediaError(ControllerError):
    error_code = "media_error"


class UnknownStream(ControllerError):
    error_code = "unknown_stream"


class UnknownSubscription(ControllerError):
    error_code = "unknown_subscription"


class UnknownTransport(ControllerError):
    error_code = "unknown_transport"


class UnsupportedOperation(ControllerError):
    error_code = "unsupported_operation"


class InvalidJsonOp(ControllerError):
    error_code = "invalid_json_op"


class InvalidJsonPath(ControllerError):
    error_code = "invalid_json_path"


class InvalidJsonValue(ControllerError):
    error_code = "invalid_json_value"


class Unauthorized(ControllerError):
    """An admin call without a valid admin key (``keys.admin_keys``); nothing was read or changed."""

    error_code = "unauthorized"
    default_message = "admin calls need a valid admin key (keys.admin_keys)"
