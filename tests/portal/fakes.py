"""Small stand-ins for the cluster manager and a conference controller (docs/interfaces.md)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from rpc import RpcError, ServiceError, Transport, rpc_method
from tests.support.fake_cluster_manager import FakeClusterManager

__all__ = ["FakeCluster", "FakeController", "Member"]


class FakeCluster(FakeClusterManager):
    """Service ``cluster``: membership accepted, one controller for every room, atomic ``claim``."""

    def __init__(self, controller_id: str) -> None:
        super().__init__()
        self.controller_id = controller_id
        self.reserved: set[str] = set()
        self.claimed: dict[str, str] = {}
        self.rooms: set[str] = set()
        #: ``schedule`` answers ``no_worker_available`` this many more times (a cluster starting).
        self.no_controller_for = 0

    def reserve(self, code: str) -> None:
        self.reserved.add(code)

    @rpc_method
    async def claim(self, purpose: str, task: str, worker_id: str) -> None:
        if task in self.claimed:
            raise ServiceError("already_claimed", f"{task} is already claimed")
        if task not in self.reserved:
            raise ServiceError("unknown_task", f"no task {task}")
        self.claimed[task] = worker_id

    @rpc_method
    async def schedule(self, purpose: str, task: str, preference: Any = None, reserve_time: float = 0) -> dict[str, Any]:
        if self.no_controller_for > 0:
            self.no_controller_for -= 1
            raise ServiceError("no_worker_available", f"no {purpose} worker available")
        self.rooms.add(task)
        return {"id": self.controller_id, "info": {}}

    @rpc_method
    async def get_scheduled(self, purpose: str, task: str) -> dict[str, Any] | None:
        return {"id": self.controller_id, "info": {}} if task in self.rooms else None


@dataclass
class Member:
    id: str
    room: str
    user: str
    role: str
    portal: str
    ticket_id: str
    held_since: float | None = None
    seq: int = 0
    acked: int = 0
    outbox: list[dict[str, Any]] = field(default_factory=list)
    last_rotation: tuple[str, str] = ("", "")
    retry_key: str | None = None
    epoch: int = 0


class FakeController:
    """A room controller with outboxes, holds and rotating tickets; records every call."""

    def __init__(self, transport: Transport, *, hold_time: float = 5.0, outbox_limit: int = 100,
                 join_delay: float = 0.0) -> None:
        self.transport = transport
        self.hold_time = hold_time
        self.outbox_limit = outbox_limit
        self.join_delay = join_delay
        self.members: dict[str, Member] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._send_lock = asyncio.Lock()
        self.on_join: Any = None
        #: A text sent to each joiner before ``join`` returns (a notification racing the login ack).
        self.welcome: str | None = None
        self.resume_delay = 0.0

    def called(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    def _served(self, participant: str, portal: str) -> Member:
        """As the real controller: only the participant's current portal may act for it."""
        member = self._member(participant)
        if member.portal != portal:
            raise ServiceError("not_current_portal", "the participant is connected through another portal")
        return member

    def _member(self, participant: str) -> Member:
        member = self.members.get(participant)
        if member is None:
            raise ServiceError("unknown_participant", participant)
        if member.held_since is not None and time.monotonic() - member.held_since > self.hold_time:
            del self.members[participant]
            raise ServiceError("hold_expired", participant)
        return member

    async def send(self, participant: str, event: str, data: Any) -> None:
        """Queue ``event`` in the participant's outbox and push it to its portal (in seq order)."""
        async with self._send_lock:
            member = self.members[participant]
            member.seq += 1
            message = {"seq": member.seq, "event": event, "data": data}
            member.outbox.append(message)
            del member.outbox[: -self.outbox_limit]
            if member.held_since is None:
                try:
                    await self.transport.call(member.portal, "notify", {"participant": member.id, **message})
                except RpcError:
                    pass

    async def _room_event(self, room: str, event: str, data: Any, *, exclude: str = "") -> None:
        for member in list(self.members.values()):
            if member.room == room and member.id != exclude:
                await self.send(member.id, event, data)

    @rpc_method
    async def join(self, room: str, participant: dict[str, Any], ticket_id: str, extension: bool = False) -> dict[str, Any]:
        self.calls.append(("join", {"room": room, "participant": participant}))
        if self.on_join is not None:
            await self.on_join(participant)
        if self.join_delay:
            await asyncio.sleep(self.join_delay)
        member = Member(participant["id"], room, participant["user"], participant["role"], participant["portal"], ticket_id)
        self.members[member.id] = member
        if self.welcome is not None:
            await self.send(member.id, "text", {"from": "room", "to": member.id, "message": self.welcome})
        await self._room_event(room, "participant", {"action": "join", "data": {"id": member.id, "user": member.user, "role": member.role}}, exclude=member.id)
        others = [{"id": m.id, "user": m.user, "role": m.role} for m in self.members.values() if m.room == room]
        return {"permission": {"publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}},
                "room": {"id": room, "views": ["common"], "participants": others, "streams": []}}

    @rpc_method
    async def leave(self, participant: str, portal: str) -> str:
        self.calls.append(("leave", {"participant": participant}))
        self._served(participant, portal)
        member = self.members.pop(participant)
        await self._room_event(member.room, "participant", {"action": "leave", "data": participant})
        return "ok"

    @rpc_method
    async def hold(self, participant: str, portal: str) -> str:
        self.calls.append(("hold", {"participant": participant, "portal": portal}))
        member = self._member(participant)
        if member.portal == portal:
            member.held_since = time.monotonic()
        return "ok"

    @rpc_method
    async def resume(self, participant: str, ticket_id: str, new_ticket_id: str, portal: str, last_seq: int | None,
                     retry_key: str | None = None) -> dict[str, Any]:
        self.calls.append(("resume", {"participant": participant, "last_seq": last_seq, "portal": portal,
                                      "retry_key": retry_key}))
        member = self._member(participant)
        if ticket_id != member.ticket_id:
            retry = (ticket_id, new_ticket_id) == member.last_rotation
            allowed = retry_key == member.retry_key if member.retry_key is not None else member.held_since is not None
            if not (retry and allowed):
                raise ServiceError("ticket_mismatch", "not the latest ticket")
        else:
            member.retry_key = retry_key
        member.last_rotation = (ticket_id, new_ticket_id)
        start = member.acked if last_seq is None else last_seq
        first = member.outbox[0]["seq"] if member.outbox else member.seq + 1
        if start + 1 < first:
            del self.members[participant]
            raise ServiceError("resync_required", f"messages {start + 1}..{first - 1} are gone")
        member.ticket_id = new_ticket_id
        previous, member.portal = member.portal, portal
        member.held_since = None
        member.epoch += 1
        if previous != portal:
            try:
                await self.transport.call(previous, "displace", {"participant": participant, "epoch": member.epoch})
            except RpcError:
                pass
        result = {"messages": [m for m in member.outbox if m["seq"] > start], "last_seq": member.seq,
                  "epoch": member.epoch}
        if self.resume_delay:
            await asyncio.sleep(self.resume_delay)  # live notifications may overtake this reply
        return result

    @rpc_method
    async def refresh_ticket(self, participant: str, ticket_id: str, new_ticket_id: str, portal: str) -> str:
        member = self._served(participant, portal)
        if ticket_id != member.ticket_id:
            raise ServiceError("ticket_mismatch", "not the latest ticket")
        member.ticket_id = new_ticket_id
        member.last_rotation = ("", "")  # a refresh opens no relogin retry
        return "ok"

    @rpc_method
    async def ack_many(self, acks: dict[str, int], portal: str) -> None:
        for participant, seq in acks.items():
            await self.ack(participant, seq, portal)

    @rpc_method
    async def ack(self, participant: str, seq: int, portal: str) -> None:
        self.calls.append(("ack", {"participant": participant, "seq": seq, "portal": portal}))
        member = self.members.get(participant)
        if member is not None and member.portal == portal and seq > member.acked:
            member.acked = seq
            member.outbox = [m for m in member.outbox if m["seq"] > seq]

    @rpc_method
    async def drop_participant(self, room: str, participant: str) -> str:
        member = self._member(participant)
        await self.transport.call(member.portal, "drop", {"participant": participant, "reason": "kicked"})
        del self.members[participant]
        return "ok"

    @rpc_method
    async def text(self, participant: str, to: str, message: Any, portal: str, request_id: str | None = None) -> str:
        self.calls.append(("text", {"participant": participant, "to": to, "message": message, "request_id": request_id}))
        sender = self._served(participant, portal)
        if to != "all" and to not in self.members:
            raise ServiceError("unknown_target", f"no participant {to}")
        targets = [m.id for m in self.members.values() if m.room == sender.room] if to == "all" else [to]
        for target in targets:
            await self.send(target, "text", {"from": participant, "to": to, "message": message})
        return "ok"

    async def _record(self, method: str, portal: str, **args: Any) -> None:
        self.calls.append((method, args))
        self._served(args["participant"], portal)

    @rpc_method
    async def publish(self, participant: str, stream_id: str, transport_id: str, info: dict[str, Any], portal: str = "", request_id: str | None = None) -> dict[str, Any]:
        await self._record("publish", portal, participant=participant, stream_id=stream_id, transport_id=transport_id, info=info)
        return {"id": stream_id, "transportId": transport_id}

    @rpc_method
    async def subscribe(self, participant: str, subscription_id: str, transport_id: str, info: dict[str, Any], portal: str = "", request_id: str | None = None) -> dict[str, Any]:
        await self._record("subscribe", portal, participant=participant, subscription_id=subscription_id, transport_id=transport_id, info=info)
        return {"id": subscription_id, "transportId": transport_id}

    @rpc_method
    async def unpublish(self, participant: str, stream_id: str, portal: str = "", request_id: str | None = None) -> str:
        await self._record("unpublish", portal, participant=participant, stream_id=stream_id)
        return "ok"

    @rpc_method
    async def unsubscribe(self, participant: str, subscription_id: str, portal: str = "", request_id: str | None = None) -> str:
        await self._record("unsubscribe", portal, participant=participant, subscription_id=subscription_id)
        return "ok"

    @rpc_method
    async def stream_control(self, participant: str, stream_id: str, operation: str, data: Any = None, portal: str = "", request_id: str | None = None) -> str:
        await self._record("stream_control", portal, participant=participant, stream_id=stream_id, operation=operation, data=data)
        return "ok"

    @rpc_method
    async def subscription_control(self, participant: str, subscription_id: str, operation: str, data: Any = None, portal: str = "", request_id: str | None = None) -> str:
        await self._record("subscription_control", portal, participant=participant, subscription_id=subscription_id, operation=operation)
        return "ok"

    @rpc_method
    async def session_signaling(self, participant: str, transport_id: str, signaling: dict[str, Any], portal: str = "", request_id: str | None = None) -> str:
        await self._record("session_signaling", portal, participant=participant, transport_id=transport_id, signaling=signaling)
        return "ok"
