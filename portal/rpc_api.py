"""The portal's RPC service (its worker id): ``deliver``, ``drop``, ``displace``, ``room_moved``,
``reattach`` (the contract: ``contracts.portal``; docs/interfaces.md)."""

from __future__ import annotations

from collections.abc import Callable

from contracts.portal import DeliverItem, DeliverResult, DeliverTarget, ReattachResult, RoomMovedResult
from rpc import rpc_method

from .delivery import SocketDelivery
from .login import LoginService
from .session import Notification, Session, Sessions

__all__ = ["PortalService"]


class PortalService:
    def __init__(self, sessions: Sessions, delivery: SocketDelivery, logins: LoginService,
                 room_moved: Callable[[str, str, str | None], int],
                 reattach: Callable[[str, list[str]], int]) -> None:
        self.sessions = sessions
        self.delivery = delivery
        self.logins = logins
        self._room_moved = room_moved
        self._reattach = reattach

    @rpc_method
    async def deliver(self, controller: str, items: list[DeliverItem]) -> DeliverResult:
        """Several notifications in one call, in order (one target: a single participant's; several:
        a room-wide event).  A target whose session here is not ``controller``'s is undelivered."""
        undelivered: list[str] = []
        for item in items:
            undelivered += await self._deliver(controller, item.targets, item.event, item.data)
        return DeliverResult(undelivered)

    async def _deliver(self, controller: str, targets: list[DeliverTarget], event: str, data: object) -> list[str]:
        found: list[tuple[Session, int | None]] = []
        undelivered: list[str] = []
        for target in targets:
            session = self.sessions.get(target.participant)
            if session is None or session.controller != controller:
                undelivered.append(target.participant)
            else:
                found.append((session, target.seq))
        if len(found) == 1:
            session, seq = found[0]
            if not await self.delivery.deliver(session, Notification(event, data, seq)):
                undelivered.append(session.id)
        elif found:
            undelivered += await self.delivery.deliver_many(found, event, data)
        return undelivered

    @rpc_method
    async def drop(self, participant: str | None = None, all: bool = False, reason: str = "") -> str:
        """Emit ``drop`` and close the socket.  The controller is not told: its caller (e.g. the
        controller's own ``drop_participant``) makes the participant leave."""
        if all:
            victims = list(self.sessions)
        else:
            session = self.sessions.get(participant or "")
            victims = [session] if session is not None else []
        for session in victims:
            await self.logins.drop(session, reason or "dropped")
        return "ok"

    @rpc_method
    async def room_moved(self, room: str, controller: str, to: str | None = None) -> RoomMovedResult:
        """``controller`` (drained) handed ``room`` to another controller: the sockets here of that
        room move there (as after a controller's loss); ``moving``: how many.  With ``to``, they
        re-attach to that controller without asking the cluster (``controller`` itself, when it
        rebuilt the room after a lost journal write)."""
        return RoomMovedResult(self._room_moved(room, controller, to))

    @rpc_method
    async def displace(self, participant: str, epoch: int) -> str:
        """The participant relogged in through another portal (resume number ``epoch``): close its
        socket here, without ``hold`` or ``leave`` and without ``drop`` (its session lives on there)."""
        self.logins.displace(participant, epoch)
        return "ok"

    @rpc_method
    async def reattach(self, controller: str, participants: list[str]) -> ReattachResult:
        """``controller`` took this portal for gone (nobody served it for a while) and holds
        ``participants``: each one whose socket is still live here for ``controller`` is re-attached
        there (``resume``, as after a partition), in the background; the others are ignored.
        ``reattaching``: how many."""
        return ReattachResult(self._reattach(controller, participants))
