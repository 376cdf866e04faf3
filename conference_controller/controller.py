"""The conference controller: a cluster worker of purpose ``conference`` hosting many rooms.

It owns the room registry and the participant → room index, the session lifecycle (join, leave,
hold, resume), fault handling (``exit.#``) and its place in the cluster.  The RPC surface is
:class:`~conference_controller.service.ControllerService`; media sessions are
:class:`~conference_controller.sessions.MediaSessions`.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from credentials import AdminKeys
from rpc import RpcError, RpcRemoteError, ServiceHandle, Subscription, Transport
from rpc.settings import WorkerSettings
from rpc.worker import ClusterWorker

from .delivery import Delivery
from .errors import (
    AlreadyJoined,
    HoldExpired,
    NotCurrentPortal,
    ResyncRequired,
    RoomConfigUnavailable,
    UnknownParticipant,
    UnknownRoom,
    UnknownTarget,
)
from .ids import ParticipantId, RoomId, WorkerId
from .logs import EventLog
from .media import MEDIA_PURPOSE, MediaGateway
from .messages import ParticipantInit, RoomConfig
from .outbox import OutboxGap
from .participant import Participant
from .room import Room
from .service import ControllerService
from .sessions import MediaSessions
from .settings import ControllerSettings

__all__ = ["Controller", "PURPOSE", "default_worker_id"]

PURPOSE = "conference"
_PORTAL_PURPOSE = "portal"


def default_worker_id() -> str:
    return f"{PURPOSE}-{uuid.uuid4().hex[:12]}@{socket.gethostname()}"


class _FaultEvent(msgspec.Struct):
    purpose: str
    id: str
    type: str = "worker"


class Controller:
    """Rooms of one controller process.

    ``start()`` serves the RPC service named ``worker_id``, subscribes to fault events and joins
    the cluster as a ``conference`` worker; ``stop()`` (idempotent) ends every loop and timer it
    started and quits the cluster.
    """

    def __init__(
        self,
        transport: Transport,
        settings: ControllerSettings,
        worker_settings: WorkerSettings,
        *,
        worker_id: str | None = None,
        rooms_service: str = "cluster.rooms",
        admin_keys: AdminKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        #: Seconds, monotonic: hold deadlines, the ticket retry window and the outbox age (timers
        #: still run on the event loop).  Tests pass a clock they move by hand.
        self.clock = clock
        #: The keys the admin calls of :class:`ControllerService` must carry; none = all refused.
        self.admin_keys = admin_keys or AdminKeys([])
        self.settings = settings
        self.worker_settings = worker_settings
        self.worker_id = WorkerId(worker_id or default_worker_id())
        self.rooms_service = rooms_service
        self.log = EventLog(worker=self.worker_id)
        self.delivery = Delivery(transport, self.worker_id, settings, self.log)
        self.media = MediaGateway(transport, cluster=worker_settings.cluster_name, controller=self.worker_id,
                                  settings=settings, log=self.log)
        self.sessions = MediaSessions(self)
        self.rooms: dict[RoomId, Room] = {}
        self.participants: dict[ParticipantId, Participant] = {}
        self._loading: dict[RoomId, asyncio.Task[Room]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.worker = ClusterWorker(
            transport, purpose=PURPOSE, worker_id=self.worker_id,
            info={"max_load": settings.max_load, "hostname": socket.gethostname()},
            settings=worker_settings, load=self._load, on_loss=self._on_loss,
        )
        self._service: ServiceHandle | None = None
        self._events: Subscription | None = None
        self._started = False
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve, subscribe to ``exit.#``, join the cluster; returns when schedulable."""
        if self._started:
            return
        self._started = True
        self._service = await self.transport.serve(self.worker_id, ControllerService(self))
        self._events = await self.transport.subscribe_events("exit.#", self._on_fault)
        await self.worker.start()
        self.log.info("controller_started")

    async def stop(self) -> None:
        """Stop serving, end timers, senders and background calls, quit the cluster.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._events is not None:
            await self._events.cancel()
        if self._service is not None:
            await self._service.stop()
        for task in list(self._loading.values()):
            task.cancel()
        for room in self.rooms.values():
            room.close()
        for participant in self.participants.values():
            participant.cancel_hold_timer()
        await self.delivery.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, *self._loading.values(), return_exceptions=True)
        if self._started:
            await self._quit_cluster()
        self.log.info("controller_stopped", rooms=len(self.rooms), participants=len(self.participants))

    async def _quit_cluster(self) -> None:
        # Bounded: on Python 3.11 a cancelled RPC call can swallow the cancellation, and then a
        # worker loop would never end; a stop must not hang on it.
        bound = 4 * (self.worker_settings.keepalive_timeout + self.worker_settings.keepalive_interval)
        try:
            async with asyncio.timeout(bound):
                await self.worker.stop(quit=True)
        except TimeoutError:
            self.log.warning("cluster_quit_timeout", seconds=bound)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run a best-effort call in the background (ended by ``stop()``)."""
        if self._stopped:
            coro.close()
            return
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _load(self) -> float:
        return min(1.0, len(self.participants) / max(1, self.settings.capacity))

    # -- lookups ---------------------------------------------------------------------------------

    def participant(self, participant_id: str) -> Participant:
        participant = self.participants.get(ParticipantId(participant_id))
        if participant is None:
            raise UnknownParticipant(f"participant {participant_id} has not joined")
        return participant

    def room(self, room_id: str) -> Room:
        room = self.rooms.get(RoomId(room_id))
        if room is None or room.closed:
            raise UnknownRoom(f"no room {room_id} here")
        return room

    def room_of(self, participant: Participant) -> Room:
        room = self.room(participant.room_id)
        room.check_open()
        return room

    def member(self, room_id: str, participant_id: str) -> Participant:
        """``participant_id`` if it is in room ``room_id`` (admin calls)."""
        room = self.room(room_id)
        participant = room.participants.get(ParticipantId(participant_id))
        if participant is None:
            raise UnknownParticipant(f"participant {participant_id} is not in room {room_id}")
        return participant

    # -- rooms -----------------------------------------------------------------------------------

    async def _open_room(self, room_id: RoomId) -> Room:
        """The room, created on first use; returned held (the caller must ``release()`` it)."""
        while True:
            room = self.rooms.get(room_id)
            if room is not None and not room.closed:
                room.hold()
                return room
            loading = self._loading.get(room_id)
            if loading is None:
                loading = asyncio.create_task(self._create_room(room_id), name=f"room:{room_id}")
                self._loading[room_id] = loading
                loading.add_done_callback(lambda _: self._loading.pop(room_id, None))
            await asyncio.shield(loading)

    async def _create_room(self, room_id: RoomId) -> Room:
        config = await self._room_config(room_id)
        room = Room(room_id, config, self.delivery, self.settings, self.log, clock=self.clock)
        self.rooms[room_id] = room
        room.log.info("room_created", limit=config.participant_limit, roles=len(config.roles))
        await self.worker.add_task(room_id)
        return room

    async def _room_config(self, room_id: RoomId) -> RoomConfig:
        try:
            raw = await self.transport.call(self.rooms_service, "get_room", {"room": room_id},
                                            timeout=self.settings.rooms_timeout)
        except RpcRemoteError as exc:
            if exc.code == "unknown_room":
                raise RoomConfigUnavailable(f"unknown room {room_id}") from None
            raise RoomConfigUnavailable(f"configuration of room {room_id}: {exc.code}: {exc.message}") from None
        except RpcError as exc:
            raise RoomConfigUnavailable(f"configuration of room {room_id} unavailable: {exc.code}") from None
        try:
            return msgspec.convert(raw, RoomConfig)
        except msgspec.ValidationError as exc:
            raise RoomConfigUnavailable(f"configuration of room {room_id} is invalid: {exc}") from None

    def settle(self, room: Room) -> None:
        """Arm the grace period of a room that nobody uses any more."""
        if room.idle and not room.closed and room.grace_timer is None:
            room.grace_timer = asyncio.get_running_loop().call_later(
                self.settings.room_grace_period, self._grace_over, room)

    def _grace_over(self, room: Room) -> None:
        room.grace_timer = None
        if not room.idle or not room.close():
            return
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
        self.spawn(self.worker.remove_task(room.id), name=f"lay-down:{room.id}")

    # -- sessions --------------------------------------------------------------------------------

    async def join(self, room_id: RoomId, init: ParticipantInit, ticket_id: str, extension: bool) -> dict[str, Any]:
        self._check_not_joined(room_id, init, ticket_id)
        room = await self._open_room(room_id)
        try:
            self._check_not_joined(room_id, init, ticket_id)
            existing = self.participants.get(ParticipantId(init.id))
            if existing is not None:
                return room.join_result(existing)
            participant = room.admit(init, ticket_id, extension)
            self.participants[participant.id] = participant
            return room.join_result(participant)
        finally:
            room.release()
            self.settle(room)

    def _check_not_joined(self, room_id: RoomId, init: ParticipantInit, ticket_id: str) -> None:
        """A repeated join (same room, portal and ticket) is answered again; any other is refused."""
        existing = self.participants.get(ParticipantId(init.id))
        if existing is None:
            return
        if existing.room_id == room_id and existing.portal == init.portal and existing.is_ticket(ticket_id):
            return
        raise AlreadyJoined(f"participant {init.id} has already joined room {existing.room_id}")

    def leave(self, participant: Participant, reason: str) -> None:
        """Remove the participant: its subscriptions and streams first, then ``participant leave``."""
        if participant.left:
            return
        participant.cancel_hold_timer()
        if self.participants.get(participant.id) is participant:
            del self.participants[participant.id]
        room = self.rooms.get(participant.room_id)
        if room is None:
            participant.left = True
            return
        self.sessions.drop_owned(room, participant)
        room.remove(participant)
        participant.left = True
        participant.log.info("participant_left", reason=reason)
        self.settle(room)

    def hold(self, participant: Participant, portal: str) -> None:
        """The portal lost the socket: keep the participant for ``reconnection_timeout``."""
        if participant.portal != portal or not participant.connected:
            return
        timeout = self.settings.reconnection_timeout
        participant.hold(self.clock() + timeout)
        participant.hold_timer = asyncio.get_running_loop().call_later(timeout, self._hold_over, participant)
        participant.log.info("participant_held", portal=portal, timeout=timeout)

    def _hold_over(self, participant: Participant) -> None:
        participant.hold_timer = None
        if not participant.left and not participant.connected:
            self.leave(participant, reason="hold_expired")

    def resume(
        self, participant: Participant, ticket_id: str, new_ticket_id: str, portal: WorkerId, last_seq: int | None,
        retry_key: str | None = None,
    ) -> dict[str, Any]:
        """A relogin through ``portal``: rotate the ticket, hand back what was missed, and make this
        the participant's only socket (the previous portal is told to close its socket: ``displace``)."""
        retry = participant.check_resume(ticket_id, new_ticket_id, retry_key)
        if participant.hold_expired():
            self.leave(participant, reason="hold_expired")
            raise HoldExpired(f"participant {participant.id} was held too long")
        try:
            messages = participant.outbox.since(last_seq)
        except OutboxGap as gap:
            self.leave(participant, reason="resync_required")
            raise ResyncRequired(f"missing {gap.first}..{gap.last}") from None
        participant.rotate(ticket_id, new_ticket_id, retry_key)
        previous = participant.portal
        participant.reconnect(portal)
        if previous != portal:
            self.spawn(self._displace(participant, previous, participant.epoch),
                       name=f"displace:{participant.id}")
        participant.log.info("participant_resumed", portal=portal, previous_portal=previous, retry=retry,
                             epoch=participant.epoch, replayed=len(messages), last_seq=last_seq)
        return {"messages": [m.to_wire() for m in messages], "last_seq": participant.outbox.last_seq,
                "epoch": participant.epoch}

    async def _displace(self, participant: Participant, portal: WorkerId, epoch: int) -> None:
        """Tell ``portal`` to close the participant's socket there (no hold, no leave).  Best effort:
        a portal that does not get it cannot act for the participant anyway (``not_current_portal``)."""
        try:
            await self.transport.call(portal, "displace", {"participant": participant.id, "epoch": epoch},
                                      timeout=self.settings.portal_timeout)
        except RpcError as exc:
            participant.log.info("displace_not_delivered", portal=portal, error=exc.code)

    def check_portal(self, participant: Participant, portal: str) -> None:
        """Refuse a call for ``participant`` from a portal that is not its current one."""
        if participant.portal != portal:
            participant.log.info("stale_portal_refused", portal=portal, current=participant.portal)
            raise NotCurrentPortal()

    def text(self, participant: Participant, to: str, message: Any) -> None:
        room = self.room_of(participant)
        if to == "all":
            room.broadcast("text", {"from": participant.id, "to": "all", "message": message})
            return
        target = room.participants.get(ParticipantId(to))
        if target is None:
            raise UnknownTarget(f"target participant does not exist: {to}")
        room.notify(target, "text", {"from": participant.id, "to": "me", "message": message})

    async def drop(self, participant: Participant, reason: str) -> None:
        """Tell the portal to drop the client (errors ignored), then remove the participant."""
        try:
            await self.transport.call(participant.portal, "drop",
                                      {"participant": participant.id, "all": False, "reason": reason},
                                      timeout=self.settings.portal_timeout)
        except RpcError as exc:
            participant.log.info("drop_not_delivered", portal=participant.portal, error=exc.code)
        self.leave(participant, reason="dropped")

    # -- faults ----------------------------------------------------------------------------------

    async def _on_fault(self, topic: str, payload: Any) -> None:
        try:
            fault = msgspec.convert(payload, _FaultEvent)
        except msgspec.ValidationError:
            self.log.warning("fault_event_invalid", topic=topic)
            return
        if fault.type != "worker":
            return
        if fault.purpose == _PORTAL_PURPOSE:
            await self._portal_lost(WorkerId(fault.id))
        elif fault.purpose == MEDIA_PURPOSE:
            self.sessions.agent_lost(WorkerId(fault.id))

    async def _portal_lost(self, portal: WorkerId) -> None:
        held = [p for p in self.participants.values() if p.portal == portal and p.connected]
        for participant in held:
            self.hold(participant, portal)
        self.log.warning("portal_lost", portal=portal, held=len(held))
        await self.delivery.forget_portal(portal)

    async def _on_loss(self, tasks: list[str]) -> None:
        """The cluster manager forgot this worker: report the rooms that still live here."""
        for task in tasks:
            room = self.rooms.get(RoomId(task))
            if room is not None and not room.closed:
                await self.worker.add_task(task)
