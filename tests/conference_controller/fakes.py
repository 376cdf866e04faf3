"""Fakes around a controller: cluster manager, rooms service, portals and a media agent."""

from __future__ import annotations

import asyncio
from typing import Any

from contracts.media import ControllerMovedResult
from contracts.portal import DeliverItem, DeliverResult, ReattachResult, RoomMovedResult
from rpc import ServiceError, Transport, rpc_method
from rpc.settings import WorkerSettings
from rpc.worker import ClusterWorker
from tests.support.fake_cluster_manager import FakeClusterManager

__all__ = ["FakeCluster", "FakeRooms", "FakePortal", "FakeAgent", "ROOM_CONFIG"]

ROOM_CONFIG: dict[str, Any] = {
    "id": "room-1",
    "name": "Room one",
    "participantLimit": 3,
    "roles": [
        {"role": "presenter", "publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}},
        {"role": "viewer", "publish": {"audio": False, "video": False}, "subscribe": {"audio": True, "video": True}},
        {"role": "audio_only", "publish": {"audio": True, "video": False}, "subscribe": {"audio": True, "video": False}},
    ],
    "views": [{"label": "common"}],
}


class FakeCluster(FakeClusterManager):
    """Just enough of the cluster manager: membership, tasks, ``schedule`` by purpose (the first
    worker of it in join order, none of ``drained``; sticky until unscheduled), ``readiness``."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled: list[tuple[str, str, Any]] = []
        self.drained: set[str] = set()
        self.placed: dict[str, str] = {}

    @rpc_method
    async def schedule(self, purpose: str, task: str, preference: Any = None, reserve_time: float | None = None) -> Any:
        self.scheduled.append((purpose, task, preference))
        if task in self.placed:
            return {"id": self.placed[task], "info": {}}
        for worker_id, worker in self.workers.items():
            if worker["purpose"] == purpose and worker_id not in self.drained:
                self.placed[task] = worker_id
                return {"id": worker_id, "info": {}}
        raise ServiceError("no_worker_available", f"no {purpose} worker")

    @rpc_method
    async def unschedule(self, worker_id: str, task: str) -> None:
        self.unscheduled.append(task)
        if self.placed.get(task) == worker_id:
            del self.placed[task]

    @rpc_method
    async def readiness(self, purpose: str) -> Any:
        schedulable = sum(1 for wid, w in self.workers.items() if w["purpose"] == purpose and wid not in self.drained)
        return {"state": self.state, "ready_in": 0.0, "schedulable": schedulable}


class FakeRooms:
    def __init__(self, *configs: dict[str, Any]) -> None:
        self.configs = {config["id"]: config for config in configs}
        self.calls: list[str] = []

    @rpc_method
    async def get_room(self, room: str) -> dict[str, Any]:
        self.calls.append(room)
        if room not in self.configs:
            raise ServiceError("unknown_room", f"no room {room}")
        return self.configs[room]


class FakePortal:
    """Records every notification per participant, in arrival order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: dict[str, list[tuple[int, str, Any]]] = {}
        self.drops: list[str | None] = []
        #: ``displace`` calls: (participant, epoch).
        self.displaced: list[tuple[str, int]] = []
        #: ``room_moved`` calls: (room, controller, to).
        self.moved: list[tuple[str, str, str | None]] = []
        #: ``reattach`` calls: (controller, participants).
        self.reattach_calls: list[tuple[str, list[str]]] = []
        #: The controller of each ``deliver`` call, in order.
        self.delivered_by: list[str] = []
        self.failing = False
        #: ``deliver`` calls still to refuse before answering again (a portal briefly unreachable).
        self.refuse_deliveries = 0

    def events(self, participant: str, event: str | None = None) -> list[tuple[int, str, Any]]:
        return [item for item in self.received.get(participant, []) if event is None or item[1] == event]

    def data(self, participant: str, event: str) -> list[Any]:
        return [data for _, _, data in self.events(participant, event)]

    def _check(self) -> None:
        if self.failing:
            raise ServiceError("unavailable", "portal is failing")

    @rpc_method
    async def deliver(self, controller: str, items: list[DeliverItem]) -> DeliverResult:
        self._check()
        if self.refuse_deliveries > 0:
            self.refuse_deliveries -= 1
            raise ServiceError("unavailable", "portal is briefly unreachable")
        self.delivered_by.append(controller)
        for item in items:
            for target in item.targets:
                self.received.setdefault(target.participant, []).append((target.seq, item.event, item.data))
        return DeliverResult([])

    @rpc_method
    async def drop(self, participant: str | None = None, all: bool = False, reason: str = "") -> str:
        self.drops.append(participant)
        return "ok"

    @rpc_method
    async def room_moved(self, room: str, controller: str, to: str | None = None) -> RoomMovedResult:
        self.moved.append((room, controller, to))
        return RoomMovedResult(0)

    @rpc_method
    async def displace(self, participant: str, epoch: int) -> str:
        self.displaced.append((participant, epoch))
        return "ok"

    @rpc_method
    async def reattach(self, controller: str, participants: list[str]) -> ReattachResult:
        self.reattach_calls.append((controller, participants))
        return ReattachResult(len(participants))


class FakeAgent:
    """A media agent (purpose ``webrtc``): answers an offer with ``soac`` then ``ready``."""

    def __init__(self, transport: Transport, worker_id: str, worker_settings: WorkerSettings) -> None:
        self.transport = transport
        self.worker_id = worker_id
        self.worker = ClusterWorker(transport, purpose="webrtc", worker_id=worker_id, info={"max_load": 0.85},
                                    settings=worker_settings)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.ended: list[str] = []
        self.controls: list[tuple[str, str, Any]] = []
        self.signals: list[tuple[str, Any]] = []
        self.moves: list[tuple[list[str], str]] = []
        self.refuse_moves = False

    async def start(self) -> None:
        await self.transport.serve(self.worker_id, self)
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()

    @rpc_method
    async def publish(self, transport_id: str, stream_id: str, participant: str, controller: str,
                      info: dict[str, Any]) -> str:
        self.sessions[stream_id] = {"transport": transport_id, "controller": controller, "kind": "publish"}
        return "ok"

    @rpc_method
    async def subscribe(self, transport_id: str, subscription_id: str, participant: str, controller: str,
                        info: dict[str, Any]) -> str:
        self.sessions[subscription_id] = {"transport": transport_id, "controller": controller, "kind": "subscribe"}
        return "ok"

    @rpc_method
    async def unpublish(self, transport_id: str, stream_id: str) -> str:
        self.sessions.pop(stream_id, None)
        self.ended.append(stream_id)
        return "ok"

    @rpc_method
    async def unsubscribe(self, transport_id: str, subscription_id: str) -> str:
        self.sessions.pop(subscription_id, None)
        self.ended.append(subscription_id)
        return "ok"

    @rpc_method
    async def controller_moved(self, transport_ids: list[str], controller: str) -> ControllerMovedResult:
        """Reports on those transports go to ``controller`` now; the sessions here on them (a
        session's ``status`` is ``pending`` unless a test set it), or ``refuse_moves`` as an error."""
        if self.refuse_moves:
            raise ServiceError("unavailable", "this agent refuses controller_moved")
        mine = {sid: s for sid, s in self.sessions.items() if s["transport"] in transport_ids}
        for session in mine.values():
            session["controller"] = controller
        self.moves.append((sorted(transport_ids), controller))
        return ControllerMovedResult(sessions={sid: s.get("status", "pending") for sid, s in mine.items()})

    @rpc_method
    async def control(self, transport_id: str, session_id: str, operation: str, data: Any) -> str:
        self.controls.append((session_id, operation, data))
        return "ok"

    @rpc_method
    async def signaling(self, transport_id: str, signaling: dict[str, Any]) -> str:
        self.signals.append((transport_id, signaling))
        if signaling.get("type") == "offer":
            asyncio.get_running_loop().create_task(self._answer(transport_id))
        return "ok"

    async def _answer(self, transport_id: str) -> None:
        pending = [(sid, s) for sid, s in self.sessions.items() if s["transport"] == transport_id]
        if not pending:
            return
        controller = pending[0][1]["controller"]
        await self.transport.call(controller, "on_session_progress", {
            "transport_id": transport_id, "status": "soac", "data": {"type": "answer", "sdp": "v=0 fake"}})
        for session_id, _ in pending:
            await self.transport.call(controller, "on_session_progress", {
                "transport_id": transport_id, "session_id": session_id, "status": "ready"})
