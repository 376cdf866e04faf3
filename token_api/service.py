"""The RPC service ``rooms``: how the controllers read a room's configuration."""

from __future__ import annotations

import msgspec

from contracts.rooms import STORE_UNAVAILABLE, UNKNOWN_ROOM, RoomConfig, RoomName, rooms_service_name
from rpc import ServiceError, rpc_method

from .store import RoomStore, StoreUnavailable

__all__ = ["RoomsService", "rooms_service_name", "UNKNOWN_ROOM", "STORE_UNAVAILABLE"]


class RoomsService:
    """``get_room(room)`` → :class:`~contracts.rooms.RoomConfig` or ``unknown_room``
    (contract: :mod:`contracts.rooms`, client :class:`contracts.rooms.RoomsClient`).

    Unknown rooms are never created here: rooms are auto-created when a token is minted.
    """

    def __init__(self, store: RoomStore) -> None:
        self._store = store

    @rpc_method
    async def get_room(self, room: RoomName) -> RoomConfig:
        try:
            config = await self._store.get(room)
        except StoreUnavailable:
            raise ServiceError(STORE_UNAVAILABLE, "the room store is unavailable; try again later") from None
        if config is None:
            raise ServiceError(UNKNOWN_ROOM, f"room {room!r} does not exist")
        return msgspec.convert(msgspec.to_builtins(config), RoomConfig)
