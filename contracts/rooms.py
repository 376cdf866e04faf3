"""The token API's rooms service: how a conference controller reads a room's configuration, and
:class:`RoomsClient`, the only place naming its method.

Served by ``token_api.service.RoomsService`` on :func:`rooms_service_name` of the cluster.
``get_room`` answers the room as the management API shows it (OWT field names: ``id``, ``name``,
``participantLimit``, ``roles``, ``views``); the controller reads it as its ``RoomConfig``.  Errors:
:data:`UNKNOWN_ROOM` (rooms are never created here: a token's minting creates them) and
:data:`STORE_UNAVAILABLE`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .client import ServiceClient

__all__ = ["RoomName", "UNKNOWN_ROOM", "STORE_UNAVAILABLE", "rooms_service_name", "RoomsClient"]

#: A room id as ``get_room`` takes it.
RoomName = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]

#: The room does not exist.
UNKNOWN_ROOM = "unknown_room"
#: The room store cannot be read now; try again later.
STORE_UNAVAILABLE = "store_unavailable"


def rooms_service_name(cluster_name: str) -> str:
    """The RPC service of a cluster's room configuration: named after its cluster manager, so that
    two clusters sharing a broker never answer for each other's rooms."""
    return f"{cluster_name}.rooms"


class RoomsClient(ServiceClient):
    """Calls the rooms service ``target`` over ``transport``; ``timeout`` in seconds (default: the
    transport's call timeout)."""


    async def get_room(self, *, room: RoomName, timeout: float | None = None) -> dict[str, Any]:
        """The configuration of ``room`` (OWT field names)."""
        answer = await self._transport.call(self._target, "get_room", {"room": room}, timeout=timeout)
        return msgspec.convert(answer, dict[str, Any])
