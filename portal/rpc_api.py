"""The portal's RPC service (its worker id): ``notify``, ``broadcast``, ``drop`` (docs/interfaces.md)."""

from __future__ import annotations

from typing import Any

from rpc import ServiceError, rpc_method

from .delivery import Delivery
from .login import LoginService
from .session import Notification, Session, Sessions

__all__ = ["PortalRpc"]


class PortalRpc:
    def __init__(self, sessions: Sessions, delivery: Delivery, logins: LoginService) -> None:
        self.sessions = sessions
        self.delivery = delivery
        self.logins = logins

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
        found: list[tuple[Session, int | None]] = []
        undelivered: list[str] = []
        for target in targets:
            if not isinstance(target, list) or not target:
                raise ServiceError("bad_arguments", "targets are [participant, seq] pairs")
            participant, seq = str(target[0]), (target[1] if len(target) > 1 else None)
            session = self.sessions.get(participant)
            if session is None or session.controller != controller:
                undelivered.append(participant)
            else:
                found.append((session, seq))
        undelivered += await self.delivery.deliver_many(found, event, data)
        return {"undelivered": undelivered}

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
