"""The token API's rooms service: how a conference controller reads a room's configuration, and
:class:`RoomsClient`, the only place naming its method.

Served by ``token_api.service.RoomsService`` on :func:`rooms_service_name` of the cluster.
``get_room`` answers a :class:`RoomConfig`: what a controller needs of the room as the management API
shows it (OWT field names: ``id``, ``name``, ``participantLimit``, ``roles``, ``views``; a reader
accepts and drops fields it does not know, so either side can be newer).  Errors:
:data:`UNKNOWN_ROOM` (rooms are never created here: a token's minting creates them) and
:data:`STORE_UNAVAILABLE`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .client import ServiceClient
from .controller import MediaPermission, Permission

__all__ = ["RoomName", "UNKNOWN_ROOM", "STORE_UNAVAILABLE", "rooms_service_name", "RoleConfig", "RoomConfig",
           "RoomsClient"]

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


class RoleConfig(msgspec.Struct):
    """A role of the room and what it may publish and subscribe to."""

    role: str
    publish: MediaPermission = msgspec.field(default_factory=MediaPermission)
    subscribe: MediaPermission = msgspec.field(default_factory=MediaPermission)

    def permission(self) -> Permission:
        return Permission(publish=self.publish, subscribe=self.subscribe)


class RoomConfig(msgspec.Struct):
    """``get_room``'s answer: the room's configuration as a controller reads it (OWT field names)."""

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


class RoomsClient(ServiceClient):
    """Calls the rooms service ``target`` over ``transport``; ``timeout`` in seconds (default: the
    transport's call timeout)."""

    async def get_room(self, *, room: RoomName, timeout: float | None = None) -> RoomConfig:
        """The configuration of ``room``; :class:`msgspec.ValidationError` if the answer is not one."""
        answer = await self._transport.call(self._target, "get_room", {"room": room}, timeout=timeout)
        return msgspec.convert(answer, RoomConfig)
