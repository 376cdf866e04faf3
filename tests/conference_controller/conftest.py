"""A controller among fakes (cluster manager, rooms service, two portals, optional media agent)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from conference_controller import Controller, ControllerSettings
from conference_controller.service import ADMIN_METHODS
from credentials import AdminKeys
from journal import Journal
from rpc import LocalBroker, Transport
from rpc.settings import WorkerSettings
from tests.support.fake_clock import FakeClock
from tests.support.transports import TransportFactory

from .fakes import ROOM_CONFIG, FakeAgent, FakeCluster, FakePortal, FakeRooms

#: The admin key the controllers of these tests accept.
ADMIN_KEY = "admin-key-of-the-controller-tests"
#: Calls a portal makes for a participant of its own: ``Env.call`` adds that participant's portal.
RELAYED = frozenset({"leave", "refresh_ticket", "ack", "text", "publish", "unpublish", "subscribe", "unsubscribe",
                     "stream_control", "subscription_control", "session_signaling"})

FAST_WORKER = dict(keepalive_interval=0.5, keepalive_timeout=0.5, keepalive_max_failures=3,
                   join_retries=50, join_interval=0.05, load_report_interval=1.0)


class Env:
    """One controller and its fakes; ``call`` reaches the controller as portal A would."""

    def __init__(self, transports: TransportFactory, settings: ControllerSettings,
                 journal: Journal | None = None) -> None:
        self.transports = transports
        self.journal = journal
        self.settings = settings
        suffix = uuid.uuid4().hex[:6]
        self.worker_settings = WorkerSettings(cluster_name=f"cluster-{suffix}", **FAST_WORKER)  # type: ignore[arg-type]
        self.rooms_service = f"rooms-{suffix}"
        self.cluster = FakeCluster()
        self.rooms = FakeRooms(ROOM_CONFIG, {**ROOM_CONFIG, "id": "room-2", "participantLimit": -1})
        self.portal_a = FakePortal(f"portal-a-{suffix}")
        self.portal_b = FakePortal(f"portal-b-{suffix}")
        self.agent: FakeAgent | None = None
        self.controller: Controller
        self.caller: Transport
        self._tickets = itertools.count(1)
        self.tickets: dict[str, str] = {}
        #: The portal each participant joined or last resumed through (where its socket is).
        self.portals: dict[str, FakePortal] = {}
        #: The controller's clock (hold deadlines, ticket retry window, outbox age): moved by hand.
        self.clock = FakeClock()

    async def start(self) -> None:
        fakes = await self.transports.make("fakes")
        # declared as a real manager declares it (on a broker shared by the session's tests)
        await fakes.serve(self.worker_settings.cluster_name, self.cluster, single_active=True)
        await fakes.serve(self.rooms_service, self.rooms)
        #: Each fake portal's served name, to stop serving it (the portal's process gone).
        self.portal_services = {portal.name: await fakes.serve(portal.name, portal)
                                for portal in (self.portal_a, self.portal_b)}
        self.caller = fakes
        self.controller = await self.start_controller("controller")

    async def start_controller(self, name: str, journal: Journal | None = None) -> Controller:
        """A controller on its own transport among these fakes (``journal``: the env's by default)."""
        transport = await self.transports.make(name)
        controller = Controller(transport, self.settings, self.worker_settings, rooms_service=self.rooms_service,
                                admin_keys=AdminKeys([ADMIN_KEY]), clock=self.clock,
                                journal=journal if journal is not None else self.journal)
        await controller.start()
        return controller

    async def start_agent(self) -> FakeAgent:
        transport = await self.transports.make("agent")
        self.agent = FakeAgent(transport, f"webrtc-{uuid.uuid4().hex[:12]}@test", self.worker_settings)
        await self.agent.start()
        return self.agent

    async def stop(self) -> None:
        await self.controller.stop()
        if self.agent is not None:
            await self.agent.stop()

    async def call(self, method: str, **args: Any) -> Any:
        """Call the controller as the participant's portal would (``portal`` added for its calls);
        admin calls carry the admin key."""
        if method in ADMIN_METHODS:
            args.setdefault("admin_key", ADMIN_KEY)
        if method in RELAYED and "portal" not in args and args.get("participant") in self.portals:
            args["portal"] = self.portals[args["participant"]].name
        return await self.caller.call(self.controller.worker_id, method, args)

    async def ack(self, pid: str, seq: int, portal: FakePortal | None = None) -> None:
        """The ``ack`` cast of the participant's portal (or of ``portal``)."""
        sender = portal or self.portals[pid]
        await self.caller.cast(self.controller.worker_id, "ack", {"participant": pid, "seq": seq,
                                                                   "portal": sender.name})

    def new_ticket(self) -> str:
        return f"ticket-{next(self._tickets)}"

    async def join(self, pid: str, role: str = "presenter", *, room: str = "room-1", portal: FakePortal | None = None,
                   user: str | None = None) -> Any:
        ticket = self.new_ticket()
        result = await self.call("join", room=room, participant={
            "id": pid, "user": user or f"user-{pid}", "role": role,
            "portal": (portal or self.portal_a).name, "origin": {"isp": "isp", "region": "region"},
        }, ticket_id=ticket, extension=True)
        self.tickets[pid] = ticket
        self.portals[pid] = portal or self.portal_a
        return result

    async def resume(self, pid: str, portal: FakePortal, last_seq: int | None, retry_key: str | None = None) -> Any:
        new = self.new_ticket()
        result = await self.call("resume", participant=pid, ticket_id=self.tickets[pid], new_ticket_id=new,
                                 portal=portal.name, last_seq=last_seq, retry_key=retry_key)
        self.tickets[pid] = new
        self.portals[pid] = portal
        return result


def controller_settings(**overrides: Any) -> ControllerSettings:
    base = dict(room_grace_period=0.2, reconnection_timeout=5.0, delivery_retries=1, delivery_retry_interval=0.05,
                portal_timeout=1.0, migration_retry_interval=0.1)
    base.update(overrides)
    return msgspec.convert(base, ControllerSettings)


@pytest_asyncio.fixture
async def make_env() -> AsyncIterator[Any]:
    """``await make_env(transports, **settings)``: a started Env (stopped at the end)."""
    made: list[Env] = []

    async def make(transports: TransportFactory, journal: Journal | None = None, **overrides: Any) -> Env:
        env = Env(transports, controller_settings(**overrides), journal)
        await env.start()
        made.append(env)
        return env

    yield make
    for env in reversed(made):
        await env.stop()


@pytest_asyncio.fixture
async def local() -> AsyncIterator[TransportFactory]:
    """The in-process transport only (for tests where both transports add nothing)."""
    factory = TransportFactory("local")
    factory.local = LocalBroker(roundtrip=True)
    yield factory
    await factory.close()


@pytest.fixture
def env_settings() -> dict[str, Any]:
    return {}


@pytest_asyncio.fixture
async def env(local: TransportFactory, make_env: Any, env_settings: dict[str, Any]) -> Env:
    made: Env = await make_env(local, **env_settings)
    return made
