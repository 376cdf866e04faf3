"""The portal's RPC service (its worker id): ``deliver``, ``notify``, ``broadcast``, ``drop``, ``displace``,
``room_moved`` (docs/interfaces.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rpc import ServiceError, rpc_method

from .delivery import Delivery
from .login import LoginService
from .session import Notification, Session, Sessions

__all__ = ["PortalRpc"]


def _check_targets(targets: Any) -> None:
    if not isinstance(targets, list) or not all(isinstance(t, list) and t for t in targets):
        raise ServiceError("bad_arguments", "targets are [participant, seq] pairs")


class PortalRpc:
    def __init__(self, sessions: Sessions, delivery: Delivery, logins: LoginService,
                 room_moved: Callable[[str, str, str | None], int]) -> None:
        self.sessions = sessions
        self.delivery = delivery
        self.logins = logins
        self._room_moved = room_moved

    @rpc_method
    async def notify(self, participant: str, event: str, data: Any = None, seq: int | None = None) -> dict[str, Any]:
        session = self.sessions.get(participant)
        if session is None:
            return {"delivered": False}
        return {"delivered": await self.delivery.deliver(session, Notification(event, data, seq))}

    @rpc_method
    async def broadcast(
        self, controller: str, targets: list[list[Any]], event: str, data: Any = None
    ) -> dict[str, Any]:
        _check_targets(targets)
        return {"undelivered": await self._deliver(controller, targets, event, data)}

    @rpc_method
    async def deliver(self, controller: str, items: list[list[Any]]) -> dict[str, Any]:
        """Several notifications in one call, in order: ``items`` are ``[targets, event, data]``
        with ``targets`` the ``[participant, seq]`` pairs (one for a notify, many for a broadcast)."""
        if not isinstance(items, list):
            raise ServiceError("bad_arguments", "items are [targets, event, data]")
        for item in items:
            if not isinstance(item, list) or len(item) != 3 or not isinstance(item[1], str):
                raise ServiceError("bad_arguments", "items are [targets, event, data]")
            _check_targets(item[0])
        undelivered: list[str] = []
        for targets, event, data in items:
            undelivered += await self._deliver(controller, targets, event, data)
        return {"undelivered": undelivered}

    async def _deliver(self, controller: str, targets: list[list[Any]], event: str, data: Any) -> list[str]:
        found: list[tuple[Session, int | None]] = []
        undelivered: list[str] = []
        for target in targets:
            participant, seq = str(target[0]), (target[1] if len(target) > 1 else None)
            session = self.sessions.get(participant)
            if session is None or session.controller != controller:
                undelivered.append(participant)
            else:
                found.append((session, seq))
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
    async def room_moved(self, room: str, controller: str, to: str | None = None) -> dict[str, int]:
        """``controller`` (drained) handed ``room`` to another controller: the sockets here of that
        room move there (as after a controller's loss); ``moving``: how many.  With ``to``, they
        re-attach to that controller without asking the cluster (``controller`` itself, when it
        rebuilt the room after a lost journal write)."""
        return {"moving": self._room_moved(room, controller, to)}

    @rpc_method
    async def displace(self, participant: str, epoch: int) -> str:
        """The participant relogged in through another portal (resume number ``epoch``): close its
        socket here, without ``hold`` or ``leave`` and without ``drop`` (its session lives on there)."""
        self.logins.displace(participant, epoch)
        return "ok"
