"""The RPC service ``rooms``: how the controllers read a room's configuration."""

from __future__ import annotations

from typing import Any

import msgspec

from rpc import ServiceError, rpc_method
from rpc.errors import BAD_ARGUMENTS

from .store import RoomStore, StoreUnavailable

__all__ = ["RoomsService", "rooms_service_name", "UNKNOWN_ROOM", "STORE_UNAVAILABLE"]

#: The RPC service name.


def rooms_service_name(cluster_name: str) -> str:
    """The RPC service of a cluster's room configuration: named after its cluster manager, so that
    two clusters sharing a broker never answer for each other's rooms."""
    return f"{cluster_name}.rooms"

UNKNOWN_ROOM = "unknown_room"
STORE_UNAVAILABLE = "store_unavailable"


class RoomsService:
    """``get_room(room)`` → ``{id, name, participantLimit, roles, views}`` or ``unknown_room``.

    Unknown rooms are never created here: rooms are auto-created when a token is minted.
    """

    def __init__(self, store: RoomStore) -> None:
        self._store = store

    @rpc_method
    async def get_room(self, room: str) -> dict[str, Any]:
        if not isinstance(room, str) or not room:
            raise ServiceError(BAD_ARGUMENTS, "get_room: room must be a non-empty string")
        try:
            config = await self._store.get(room)
        except StoreUnavailable:
            raise ServiceError(STORE_UNAVAILABLE, "the room store is unavailable; try again later") from None
        if config is None:
            raise ServiceError(UNKNOWN_ROOM, f"room {room!r} does not exist")
        result: dict[str, Any] = msgspec.to_builtins(config)
        return result
