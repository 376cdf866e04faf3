"""The portal worker: Socket.IO server, RPC service, cluster membership and fault events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from background import Background
from contracts.cluster import IN_SERVICE, WorkerExit, new_worker_id
from credentials import Keyring
from observability import Readiness, observe_transport
from rpc import ServiceHandle, Subscription, Transport
from rpc.settings import WorkerSettings
from rpc.version import software_version
from rpc.worker import ClusterWorker

from .alternatives import Alternatives
from .delivery import AckBatcher, SocketDelivery
from .login import LoginService
from .logs import EventLog
from .metrics import PortalMetrics
from .relay import Relay
from .rpc_api import PortalService
from .server import PortalServer, create_sio
from .session import Session, Sessions
from .settings import PortalSettings

__all__ = ["Portal", "PURPOSE"]

PURPOSE = "portal"
#: Sessions re-attached at once after a partition or a controller's loss (each is one ``resume`` call).
_REATTACH_BATCH = 64


class Portal:
    """One portal worker. ``start()`` returns once clients can connect and the cluster knows it."""

    def __init__(
        self,
        transport: Transport,
        settings: PortalSettings,
        keyring: Keyring,
        worker_settings: WorkerSettings,
        *,
        worker_id: str | None = None,
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.worker_id = worker_id or new_worker_id(PURPOSE)
        self.log = EventLog(worker=self.worker_id)
        self.metrics = PortalMetrics()
        observe_transport(self.metrics.registry, transport)
        self.sessions = Sessions()
        self.background = Background(self.log)
        self.worker = ClusterWorker(
            transport,
            purpose=PURPOSE,
            worker_id=self.worker_id,
            info={},
            settings=worker_settings,
            load=self._load,
            on_loss=self._on_loss,
            on_recovery=self._on_recovery,
        )
        sio = create_sio(settings)
        self.acks = AckBatcher(transport, settings.ack_interval, self.log, self.worker_id)
        self.delivery = SocketDelivery(sio, self.acks, self.metrics)
        self.server: PortalServer
        self.logins = LoginService(
            transport=transport,
            settings=settings,
            keyring=keyring,
            worker=self.worker,
            sessions=self.sessions,
            delivery=self.delivery,
            acks=self.acks,
            metrics=self.metrics,
            background=self.background,
            log=self.log,
            close_socket=self._close_socket,
            close_transport=self._close_transport,
            alternatives=Alternatives(
                transport, settings, cluster=worker_settings.cluster_name, worker_id=self.worker_id,
                background=self.background, log=self.log,
            ),
        )
        self.relay = Relay(transport, settings, self.metrics, self.worker_id)
        self.server = PortalServer(
            sio, settings, self.logins, self.relay, self.acks, self.metrics, self.log
        )
        self._service: ServiceHandle | None = None
        self._faults: Subscription | None = None
        self._started = False
        self._stopped = False
        self._serving = False
        self.server.readiness = self.readiness

    def readiness(self) -> Readiness:
        """Ready once started and joined to the cluster, while the broker is connected."""
        details = {"worker_id": self.worker_id}
        if not self._serving or self._stopped:
            return Readiness.not_ready("not started, or stopped", **details)
        if not self.transport.connected:
            return Readiness.not_ready("broker connection lost", **details)
        if self.worker.manager_state is None:
            return Readiness.not_ready("not joined to the cluster", **details)
        return Readiness.serving(**details)

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        """Bind, serve RPC, follow fault events, send acks, join the cluster; idempotent.

        A step that fails undoes the ones before it (in reverse) and its error is raised; a portal
        that failed to start or was stopped cannot be started again."""
        if self._stopped:
            raise RuntimeError("this Portal was stopped; make a new one")
        if self._started:
            return
        self._started = True
        try:
            async with AsyncExitStack() as undo:
                await self.server.start()
                undo.push_async_callback(self.server.stop)
                self.worker.info = self._info()
                self._service = await self.transport.serve(
                    self.worker_id, PortalService(self.sessions, self.delivery, self.logins, self.room_moved,
                                                  self.reattach_held))
                undo.push_async_callback(self._service.stop)
                self._faults = await self.transport.subscribe_events("exit.#", self._on_fault)
                undo.push_async_callback(self._faults.cancel)
                self.acks.start()
                undo.push_async_callback(self.acks.stop)
                await self.worker.start()
                undo.pop_all()
        except BaseException:
            self._stopped = True
            raise
        self._serving = True
        self.log.info("portal_started", port=self.port)

    async def stop(self) -> None:
        """Stop serving; participants are held by their controllers (they may relogin elsewhere)."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        if self._faults is not None:
            await self._faults.cancel()
        await self.server.stop()
        await self.background.stop(grace=self.settings.request_timeout)  # lets the holds reach the controllers
        if self._service is not None:
            await self._service.stop()
        await self.acks.stop()
        await self.worker.stop(quit=True)
        self.log.info("portal_stopped")

    def _info(self) -> dict[str, Any]:
        s = self.settings
        return {
            "hostname": s.hostname or "127.0.0.1",
            "port": self.port,
            "via_host": s.via_host,
            "secure": s.secure,
            "max_load": s.max_load,
            "capacity": {"isps": list(s.isps), "regions": list(s.regions)},
            "version": software_version(),
        }

    def _load(self) -> float:
        return min(1.0, len(self.sessions) / self.settings.max_participants)

    async def _close_socket(self, sid: str) -> None:
        await self.server.close_socket(sid)

    async def _close_transport(self, sid: str) -> None:
        await self.server.close_transport(sid)

    async def _on_loss(self, tasks: list[str]) -> None:
        """The manager forgot this worker's tasks; sessions go on, the tasks are reported again."""
        for task in tasks:
            await self.worker.add_task(task)

    async def _on_recovery(self) -> None:
        """Back in the cluster after losing the manager.  A manager in service has forgotten this
        portal, and may have declared it lost (``exit.quit``): then the controllers hold its
        participants although their sockets are still here.  Every live session is re-attached
        (:meth:`LoginService.reattach`), in the background: the keepalives go on meanwhile.  A
        freshly started manager (``initializing``) declared nobody lost: nothing to do."""
        if self.worker.manager_state != IN_SERVICE:
            return
        live = [session for session in self.sessions if session.live]
        if live:
            self.log.warning("reattaching", participants=len(live))
            self.background.spawn(self._reattach(live), name="reattach")

    def reattach_held(self, controller: str, participants: list[str]) -> int:
        """``controller`` holds ``participants`` although their sockets may still be here (it took this
        portal for gone: nobody served its queue for a while).  Each session of them that is live here
        and attached to ``controller`` is re-attached (:meth:`LoginService.reattach`), in the
        background; the others are ignored.  How many."""
        held = []
        for participant in participants:
            session = self.sessions.get(participant)
            if session is not None and session.live and session.controller == controller and session.moving is None:
                held.append(session)
        if held:
            self.log.warning("reattaching", participants=len(held), controller=controller, reason="held_by_controller")
            self.background.spawn(self._reattach(held), name=f"reattach:{controller}")
        return len(held)

    async def _reattach(self, sessions: list[Session]) -> None:
        for batch in _batches(sessions):
            await asyncio.gather(*(self.logins.reattach(s) for s in batch))

    async def _on_fault(self, topic: str, payload: Any) -> None:
        try:
            fault = msgspec.convert(payload, WorkerExit)
        except msgspec.ValidationError:
            self.log.warning("fault_event_invalid", topic=topic)
            return
        if fault.type != "worker" or fault.purpose != "conference":
            return
        controller = fault.id
        victims = self.sessions.of_controller(controller)
        if victims:
            for session in victims:
                session.start_move()
            interrupted = self.relay.interrupt(controller)
            self.log.warning("controller_lost", controller=controller, participants=len(victims),
                             requests_redirected=interrupted)
            self.background.spawn(self._fail_over(victims, controller), name=f"failover:{controller}")

    def room_moved(self, room: str, controller: str, to: str | None = None) -> int:
        """A drained controller handed ``room`` to another one (``to``, or the one the cluster
        schedules): move this portal's sockets of that room there, in the background, as after a
        controller's loss; how many."""
        moving = [s for s in self.sessions.of_controller(controller) if s.room == room]
        if moving:
            self.log.info("room_moved", room=room, controller=controller, participants=len(moving))
            for session in moving:
                session.start_move()
            self.background.spawn(self._fail_over(moving, controller, to), name=f"room-moved:{room}")
        return len(moving)

    async def _fail_over(self, sessions: list[Session], lost: str, to: str | None = None) -> None:
        """Move every session of a lost controller to its room's new controller: the rooms at once, one
        ``schedule`` per room, at most ``_REATTACH_BATCH`` re-attaches at once; each session's requests
        made meanwhile go on once it moved (:attr:`Session.moving`)."""
        rooms: dict[str, list[Session]] = {}
        for session in sessions:
            rooms.setdefault(session.room, []).append(session)
        slots = asyncio.Semaphore(_REATTACH_BATCH)

        async def rehome(room: str, of_room: list[Session]) -> None:
            try:
                await self.logins.rehome(room, of_room, lost, slots, to=to)
            except Exception as exc:
                self.log.warning("failover_error", room=room, error=repr(exc))
            finally:
                for session in of_room:
                    session.end_move()

        await asyncio.gather(*(rehome(room, of_room) for room, of_room in rooms.items()))


def _batches(sessions: list[Session]) -> Iterator[list[Session]]:
    """``sessions`` some at a time (``_REATTACH_BATCH``): re-attaches of many sockets do not all start at once."""
    for first in range(0, len(sessions), _REATTACH_BATCH):
        yield sessions[first:first + _REATTACH_BATCH]
