"""A portal under test among the REAL cluster manager and conference controller (in-process transport).

Tickets, outboxes, holds, replay, dedupe and drops are the controller's rules and token claims the
cluster manager's: the tests below exercise the real ones.  Both are served through a
:class:`~tests.portal.spy.Spy`, which records the calls that reached them and injects the faults the
real components cannot produce on cue (a reply held back, a service unreachable).  A fake media
agent (``tests/conference_controller/fakes.FakeAgent``) answers the controller's media calls.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import msgspec

from cluster_manager import ClusterManager
from cluster_manager.settings import ClusterManagerSettings
from conference_controller import Controller, ControllerSettings
from conference_controller.ids import ParticipantId
from conference_controller import machine
from conference_controller.state import ParticipantState
from journal import Journal
from credentials import AdminKeys, JoinToken, Keyring, decode_ticket, encode_token, new_id, now_ms
from portal import Portal, PortalSettings
from rpc import Transport, rpc_method
from rpc.settings import WorkerSettings
from tests.conference_controller.fakes import FakeAgent
from tests.support.sockets import RecordingClient
from tests.support.transports import TransportFactory
from token_api import rooms_service_name
from tests.support.waiting import wait_until

from .spy import Spy, SpyTransport

__all__ = ["Harness", "Client", "CONTROLLER_ID", "ADMIN_KEY"]

CONTROLLER_ID = "conference-000000000001@test"
CLUSTER = "cluster"
KEY = "portal-test-key"
ADMIN_KEY = "admin-key-of-the-portal-tests"
WORKER = WorkerSettings(keepalive_interval=0.2, load_report_interval=0.2, join_interval=0.05)
MEDIA = {"audio": True, "video": True}


class Rooms:
    """Service ``rooms``: every room exists, with a ``presenter`` and a ``viewer`` role."""

    @rpc_method
    async def get_room(self, room: str) -> dict[str, Any]:
        return {"id": room, "name": room, "participantLimit": -1, "views": ["common"],
                "roles": [{"role": "presenter", "publish": MEDIA, "subscribe": MEDIA},
                          {"role": "viewer", "publish": {"audio": False, "video": False}, "subscribe": MEDIA}]}


class Client(RecordingClient):
    """A recording client of the portal on ``port`` (this machine)."""

    def __init__(self, port: int) -> None:
        super().__init__(f"http://127.0.0.1:{port}")
        self.port = port


class Harness:
    """The real cluster manager (service ``cluster``) and controller (``CONTROLLER_ID``), portals on demand.

    ``spy`` sees every call to the controller, ``cluster_spy`` every call to the manager,
    ``portal_spies[worker_id]`` every call to a portal.  The
    controller starts with the first portal (or :meth:`start_controller`, to give it settings).
    """

    def __init__(self, factory: TransportFactory) -> None:
        self.factory = factory
        self.keyring = Keyring([KEY])
        self.portals: list[Portal] = []
        self.clients: list[Client] = []
        self.spy = Spy()
        self.cluster_spy = Spy()
        #: Per portal (by worker id): the calls that reached its RPC service (``deliver``, ``displace``…).
        self.portal_spies: dict[str, Spy] = {}
        self.transport: Transport
        self.manager: ClusterManager
        self.controller: Controller | None = None
        self.agent: FakeAgent | None = None
        self._isps = itertools.count()
        self._portal_isp: dict[str, str] = {}
        self._stoppable: list[Any] = []

    async def start(self) -> Harness:
        self.transport = await self.factory.make("tests")
        self.manager = ClusterManager(await self._spied("manager"), ClusterManagerSettings(initial_time=0.0),
                                      admin_keys=AdminKeys([ADMIN_KEY]))
        await self.manager.start()
        self._stoppable.append(self.manager)
        await self.transport.serve(rooms_service_name("cluster"), Rooms())
        return self

    async def _spied(self, node_id: str) -> SpyTransport:
        transport = SpyTransport(self.factory.local, node_id, {CONTROLLER_ID: self.spy, CLUSTER: self.cluster_spy})
        await transport.start()
        self.factory.made.append(transport)
        return transport

    async def start_controller(self, journal: Journal | None = None, **settings: Any) -> Controller:
        """The real controller, with ``settings`` over the defaults (``ControllerSettings`` fields)
        and ``journal`` (default: none)."""
        assert self.controller is None, "one controller per harness"
        options: dict[str, Any] = {"room_grace_period": 0.5, "delivery_retry_interval": 0.02}
        options.update(settings)
        self.controller = Controller(await self._spied("controller"), msgspec.convert(options, ControllerSettings),
                                     WORKER, worker_id=CONTROLLER_ID, admin_keys=AdminKeys([ADMIN_KEY]),
                                     journal=journal)
        await self.controller.start()
        self._stoppable.append(self.controller)
        return self.controller

    async def start_agent(self) -> FakeAgent:
        """A fake media agent (purpose ``webrtc``) that answers offers with ``soac`` then ``ready``."""
        self.agent = FakeAgent(await self.factory.make("agent"), f"webrtc-{new_id()[:12]}@test", WORKER)
        await self.agent.start()
        self._stoppable.append(self.agent)
        return self.agent

    @property
    def real(self) -> Controller:
        assert self.controller is not None, "the controller has not started"
        return self.controller

    async def portal(self, *, controller: bool = True, **settings: Any) -> Portal:
        """A started portal (and the controller, unless ``controller=False``: a cluster still starting)."""
        if controller and self.controller is None:
            await self.start_controller()
        isp = f"isp-{next(self._isps)}"  # tokens name it to be scheduled on this portal
        options: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "ack_interval": 0.02, "isps": [isp]}
        options.update(settings)
        transport = SpyTransport(self.factory.local, f"portal-node-{len(self.portals)}", self.portal_spies)
        await transport.start()
        self.factory.made.append(transport)
        portal = Portal(transport, PortalSettings(**options), self.keyring, WORKER)
        self.portal_spies[portal.worker_id] = Spy()  # before start(): it serves its worker id then
        await portal.start()
        self.portals.append(portal)
        self._portal_isp[portal.worker_id] = isp
        return portal

    async def client(self, portal: Portal) -> Client:
        client = Client(portal.port)
        self.clients.append(client)
        return await client.connect()

    async def token(self, portal: Portal | None = None, *, room: str = "room-1", user: str = "alice",
                    role: str = "presenter", lifetime_ms: int = 60_000, reserve: bool = True,
                    keyring: Keyring | None = None) -> str:
        """A join token whose portal task the cluster manager reserved on ``portal`` (the first one)."""
        portal = portal or self.portals[0]
        origin = {"isp": self._portal_isp[portal.worker_id], "region": "region"}
        code = new_id()
        if reserve:
            scheduled = await self.transport.call(CLUSTER, "schedule", {"purpose": "portal", "task": code,
                                                                        "preference": origin, "reserve_time": 60})
            assert scheduled["id"] == portal.worker_id, scheduled
        token = JoinToken(
            token_id=new_id(), host="127.0.0.1", secure=False, room=room, user=user, role=role, code=code,
            not_after=now_ms() + lifetime_ms, origin=origin,
        )
        return encode_token(token, keyring or self.keyring)

    async def joined(self, portal: Portal, *, extension: bool = False, **token: Any) -> tuple[Client, dict[str, Any]]:
        client = await self.client(portal)
        status, result = await client.login(await self.token(portal, **token), extension=extension)
        assert status == "ok", result
        return client, result

    def ticket_id(self, ticket: str) -> str:
        return decode_ticket(ticket, self.keyring).ticket_id

    # -- the controller's state ------------------------------------------------------------------

    def member(self, participant: str) -> ParticipantState | None:
        room = self.real.participants.get(ParticipantId(participant))
        return None if room is None else room.participants.get(participant)

    def held(self, participant: str) -> bool:
        member = self.member(participant)
        return member is not None and not member.connected

    def notify(self, participant: str, event: str, data: Any) -> int:
        """The controller gives the participant a notification (outbox, then its portal); its seq."""
        room = self.real.participants.get(ParticipantId(participant))
        assert room is not None, participant
        self.real.commit(room, machine.decide_notify(room.state, participant, event, data, self.real.clock()))
        return room.participants[participant].outbox.last_seq

    def text_to(self, participant: str, *messages: str) -> None:
        for message in messages:
            self.notify(participant, "text", {"from": "bob", "to": "me", "message": message})

    async def settled(self, client: Client, participant: str) -> list[str]:
        """The texts ``client`` got, once everything the controller sent before now has arrived: a
        marker notification goes last and the controller delivers in order (no sleep to wait for
        "nothing more")."""
        marker = f"marker-{new_id()}"
        self.text_to(participant, marker)
        await wait_until(lambda: marker in client.texts(), what="the marker")
        texts = client.texts()
        assert texts[-1] == marker, texts
        return texts[:-1]

    async def admin(self, target: str, method: str, **args: Any) -> Any:
        return await self.transport.call(target, method, {**args, "admin_key": ADMIN_KEY})

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for portal in self.portals:
            await portal.stop()
        for component in reversed(self._stoppable):
            await component.stop()


async def settle(check: Callable[[], Any], what: str = "", timeout: float = 5.0) -> Any:
    return await wait_until(check, timeout=timeout, what=what)
