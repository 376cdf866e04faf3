"""The portal's RPC service (service name: the portal's worker id): what controllers call on a portal.

``deliver`` carries notifications, ``drop`` and ``displace`` close a participant's socket there,
``room_moved`` moves a room's sockets to another controller, ``reattach`` gives back participants a
controller held while their sockets may still be there (docs/interfaces.md, *Portal*).  The
serving side is ``portal.rpc_api.PortalService``; :class:`PortalClient` is the calling side.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .client import ServiceClient

__all__ = ["DeliverTarget", "DeliverItem", "DeliverResult", "RoomMovedResult", "ReattachResult", "PortalClient"]


class DeliverTarget(msgspec.Struct, array_like=True, frozen=True):
    """One recipient of a notification: ``[participant, seq]`` on the wire (``seq``: its number in
    the participant's outbox)."""

    participant: str
    seq: int


class DeliverItem(msgspec.Struct, array_like=True, frozen=True):
    """One notification for one or more participants of one portal: ``[targets, event, data]`` on
    the wire (one target: a single participant's; several: a room-wide event)."""

    targets: list[DeliverTarget]
    event: str
    data: Any


class DeliverResult(msgspec.Struct, frozen=True):
    #: The targets with no socket at this portal for that controller (held, gone, never here).
    undelivered: list[str]


class RoomMovedResult(msgspec.Struct, frozen=True):
    #: How many of the portal's sockets move to the room's new controller.
    moving: int


class ReattachResult(msgspec.Struct, frozen=True):
    #: How many of the named participants have a live socket there for the calling controller (each
    #: is re-attached in the background).
    reattaching: int


class PortalClient(ServiceClient):
    """Calls on one portal (``target``: its worker id).

    The arguments are handed to the transport as they are: it encodes structs itself, and an
    in-process call without a JSON round trip passes them to the portal unconverted (``deliver`` is
    on the relay path)."""

    @staticmethod
    def deliver_request(*, controller: str, items: list[DeliverItem]) -> tuple[str, dict[str, Any]]:
        """The method and the arguments of a ``deliver`` call (what a dead letter keeps to make it again)."""
        return "deliver", {"controller": controller, "items": items}

    async def deliver(self, *, controller: str, items: list[DeliverItem],
                      timeout: float | None = None) -> DeliverResult:
        """Emit ``items`` in order to their targets' sockets there, for ``controller``."""
        method, args = self.deliver_request(controller=controller, items=items)
        return msgspec.convert(await self._transport.call(self._target, method, args, timeout=timeout), DeliverResult)

    async def drop(self, *, participant: str | None = None, all: bool = False, reason: str = "",
                   timeout: float | None = None) -> str:
        """Emit ``drop`` to the participant (``all``: to every participant there) and disconnect it."""
        args = {"participant": participant, "all": all, "reason": reason}
        return msgspec.convert(await self._transport.call(self._target, "drop", args, timeout=timeout), str)

    async def room_moved(self, *, room: str, controller: str, to: str | None = None,
                         timeout: float | None = None) -> RoomMovedResult:
        """``controller`` handed ``room`` on (to ``to`` when it names it): the sockets there move."""
        args = {"room": room, "controller": controller, "to": to}
        return msgspec.convert(await self._transport.call(self._target, "room_moved", args, timeout=timeout),
                               RoomMovedResult)

    async def displace(self, *, participant: str, epoch: int, timeout: float | None = None) -> str:
        """The participant relogged in elsewhere (resume number ``epoch``): close its socket there."""
        args = {"participant": participant, "epoch": epoch}
        return msgspec.convert(await self._transport.call(self._target, "displace", args, timeout=timeout), str)

    async def reattach(self, *, controller: str, participants: list[str],
                       timeout: float | None = None) -> ReattachResult:
        """``controller`` holds ``participants`` of this portal (it took the portal for gone): each one
        whose socket is still there for ``controller`` is re-attached (``resume``), in the background."""
        args = {"controller": controller, "participants": participants}
        return msgspec.convert(await self._transport.call(self._target, "reattach", args, timeout=timeout),
                               ReattachResult)
