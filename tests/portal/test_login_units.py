"""``LoginService`` alone: login, relogin, logout, refresh, a lost socket and a drop, without sockets.

The service runs against the REAL cluster manager and controller of :class:`Harness` (in-process
transport, both behind a spy), but is built here by hand: what it sends goes through a recording
transport, what it emits lands on a fake Socket.IO server, the sockets it closes are recorded, and
its cluster retries wait on a fake clock.  Every answer, refusal and call is checked exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from background import Background
import msgspec
import pytest
import socketio

from credentials import JoinToken, Keyring, Ticket, decode_ticket, encode_ticket, encode_token, new_id, now_ms
from portal.connection import Connection, State
from portal.delivery import AckBatcher, SocketDelivery
from portal.errors import Ack, RequestError
from portal.limits import SocketLimits
from portal.login import RETRY_KEY_SALT, ROTATION_SALT, LoginService
from portal.logs import EventLog
from portal.metrics import PortalMetrics
from portal.rpc_api import PortalService
from portal.session import Notification, Phase, Session, Sessions
from portal.settings import PortalSettings
from rpc.worker import ClusterWorker
from tests.support.fake_clock import FakeClock
from tests.support.recording import RecordingTransport, Sent
from tests.support.stepped_sleep import SteppedSleep
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .harness import CLUSTER, CONTROLLER_ID, WORKER, Harness

PORTAL = "portal-unit@test"
ISP = "isp-unit"
ORIGIN = {"isp": ISP, "region": "region"}
SETTINGS = PortalSettings(host="127.0.0.1", port=0, isps=[ISP], cluster_retry_budget=1.0,
                          cluster_retry_interval=0.25, cluster_timeout=1.5, join_timeout=3.5, request_timeout=2.5,
                          reconnection_ticket_lifetime=120.0, room_reserve_time=12.0, failover_attempts=3,
                          failover_interval=0.75)


@dataclass
class _FakeSio:
    """Records every ``emit(event, data, to=…)``."""

    emitted: list[tuple[str, Any, Any]] = field(default_factory=list)

    async def emit(self, event: str, data: Any = None, to: Any = None) -> None:
        self.emitted.append((event, data, to))


class _Sleeps:
    """A ``sleep=`` that moves the fake clock by the delay asked for; ``then`` runs after each."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.asked: list[float] = []
        self.then: list[Any] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.clock.advance(seconds)
        for action in self.then:
            action()


@dataclass
class _World:
    harness: Harness
    transport: RecordingTransport
    logins: LoginService
    sessions: Sessions
    sio: _FakeSio
    metrics: PortalMetrics
    worker: ClusterWorker
    sleeps: _Sleeps
    closed: list[str] = field(default_factory=list)
    closed_transports: list[str] = field(default_factory=list)
    _sids: int = 0

    def connection(self) -> Connection:
        self._sids += 1
        conn = Connection(f"sid-{self._sids}", SocketLimits(rate=100, burst=100, max_pending=10, max_bytes=65536),
                          EventLog())
        self.logins.connections[conn.sid] = conn
        return conn

    async def token(self, *, room: str = "room-1", user: str = "alice", role: str = "presenter",
                    reserve: bool = True, keyring: Keyring | None = None, lifetime_ms: int = 60_000) -> JoinToken:
        code = new_id()
        if reserve:
            scheduled = await self.harness.transport.call(
                CLUSTER, "schedule", {"purpose": "portal", "task": code, "preference": ORIGIN, "reserve_time": 60})
            assert scheduled["id"] == PORTAL, scheduled
        return JoinToken(token_id=new_id(), host="127.0.0.1", secure=False, room=room, user=user, role=role,
                         code=code, not_after=now_ms() + lifetime_ms, origin=ORIGIN)

    def encoded(self, token: JoinToken, keyring: Keyring | None = None) -> str:
        return encode_token(token, keyring or self.harness.keyring)

    async def login(self, conn: Connection | None = None, **payload: Any) -> tuple[Connection, JoinToken, Ack]:
        conn = conn or self.connection()
        token = await self.token()
        answer = await self.logins.login(conn, {"token": self.encoded(token), "protocol": "1.2", **payload})
        session = conn.session
        assert session is not None
        await wait_until(lambda: session.phase is Phase.LIVE, what="the session live")  # once the ack went out
        return conn, token, answer

    def to(self, target: str, method: str) -> list[Sent]:
        return [s for s in self.transport.sent if s.target == target and s.method == method]

    def count(self, counter: str, result: str, reason: str) -> float | None:
        return self.metrics.registry.get_sample_value(f"switchboard_portal_{counter}_total",
                                                      {"result": result, "reason": reason})

    def participants(self) -> float | None:
        return self.metrics.registry.get_sample_value("switchboard_portal_participants")


@pytest.fixture
async def world(caplog: pytest.LogCaptureFixture) -> AsyncIterator[_World]:
    factory = TransportFactory("local")
    harness = await Harness(factory).start()
    await harness.start_controller()
    inner = await factory.make("portal-unit-node")
    transport = RecordingTransport(inner)
    log = EventLog(worker=PORTAL)
    worker = ClusterWorker(transport, purpose="portal", worker_id=PORTAL, info={
        "hostname": "127.0.0.1", "port": 1, "via_host": "", "secure": False, "max_load": 0.85,
        "capacity": {"isps": [ISP], "regions": []}}, settings=WORKER, load=lambda: 0.0)
    sessions = Sessions()
    metrics = PortalMetrics()
    acks = AckBatcher(transport, 0.5, log, PORTAL, sleep=SteppedSleep())
    sio = _FakeSio()
    delivery = SocketDelivery(cast(socketio.AsyncServer, sio), acks, metrics)
    background = Background(log)
    clock = FakeClock()
    sleeps = _Sleeps(clock)
    closed: list[str] = []
    closed_transports: list[str] = []

    async def close_socket(sid: str) -> None:
        closed.append(sid)

    async def close_transport(sid: str) -> None:
        closed_transports.append(sid)

    logins = LoginService(transport=transport, settings=SETTINGS, keyring=harness.keyring, worker=worker,
                          sessions=sessions, delivery=delivery, acks=acks, metrics=metrics, background=background,
                          log=log, close_socket=close_socket, close_transport=close_transport, sleep=sleeps,
                          clock=clock)
    service = await transport.serve(PORTAL, PortalService(sessions, delivery, logins, lambda room, controller, to: 0,
                                                          lambda controller, participants: 0))
    await worker.start()
    yield _World(harness, transport, logins, sessions, sio, metrics, worker, sleeps, closed, closed_transports)
    await asyncio.sleep(0)  # one turn of the loop: the done callbacks of tasks that just ended have run
    # no task the service ran in the background crashed
    records = caplog.get_records("call") + caplog.get_records("teardown")
    assert [r.getMessage() for r in records if r.getMessage().startswith("background_task_failed")] == []
    await background.stop()
    await worker.stop(quit=True)
    await service.stop()
    await harness.close()
    await factory.close()


async def _refused(action: Any, reason: str, code: str) -> RequestError:
    with pytest.raises(RequestError) as caught:
        await action
    assert (caught.value.reason, caught.value.code) == (reason, code)
    return caught.value


# -- login ---------------------------------------------------------------------------------------


async def test_login_answers_exactly_and_sends_exactly_claim_schedule_join(world: _World) -> None:
    conn = world.connection()
    token = await world.token(user="alice", role="viewer")
    answer = await world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"})
    assert isinstance(answer, tuple) and answer[0] == "ok"
    result = answer[1]
    participant = result["id"]
    session = world.sessions.get(participant)
    assert session is not None and conn.session is session and session.sid == conn.sid
    assert conn.state is State.CONNECTED and session.phase is Phase.PENDING  # live once the ack went out
    await wait_until(lambda: session.phase is Phase.LIVE, what="the session live")
    assert (session.room, session.user, session.role, session.token_code, session.extension) == (
        "room-1", "alice", "viewer", token.code, False)
    assert session.controller == CONTROLLER_ID
    assert sorted(result) == ["id", "permission", "reconnectionTicket", "role", "room", "user"]
    assert (result["user"], result["role"]) == ("alice", "viewer")
    assert result["permission"] == {"publish": {"audio": False, "video": False},
                                    "subscribe": {"audio": True, "video": True}}
    assert result["room"]["id"] == "room-1"
    assert [p["id"] for p in result["room"]["participants"]] == [participant]
    ticket = decode_ticket(result["reconnectionTicket"], world.harness.keyring)
    member = world.harness.member(participant)
    assert member is not None
    assert (ticket.participant_id, ticket.room, ticket.ticket_id) == (participant, "room-1", session.ticket_id)
    assert ticket.not_after - ticket.not_before == 120_000
    assert world.to(CLUSTER, "claim") == [Sent("call", CLUSTER, "claim", {
        "purpose": "portal", "task": token.code, "worker_id": PORTAL}, 1.5)]
    assert world.to(CLUSTER, "schedule") == [Sent("call", CLUSTER, "schedule", {
        "purpose": "conference", "task": "room-1", "preference": ORIGIN, "reserve_time": 12.0}, 1.5)]
    assert world.to(CONTROLLER_ID, "join") == [Sent("call", CONTROLLER_ID, "join", {
        "room": "room-1",
        "participant": {"id": participant, "user": "alice", "role": "viewer", "portal": PORTAL, "origin": ORIGIN},
        "ticket_id": session.ticket_id, "extension": False}, 3.5)]
    assert token.code in world.worker.tasks
    assert world.count("logins", "ok", "") == 1.0
    assert world.participants() == 1.0
    assert world.closed == []


async def test_the_extension_is_asked_for_either_way_and_confirmed(world: _World) -> None:
    _, _, plain = await world.login()
    assert isinstance(plain, tuple) and "switchboard" not in plain[1]
    for payload in ({"extension": True}, {"userAgent": {"switchboard": {"seq": True}}}):
        conn, _, answer = await world.login(**payload)
        assert isinstance(answer, tuple) and answer[1]["switchboard"] == {"seq": True, "alternatives": []}
        assert conn.session is not None and conn.session.extension is True
        assert world.to(CONTROLLER_ID, "join")[-1].args == {**(world.to(CONTROLLER_ID, "join")[-1].args or {}),
                                                              "extension": True}


async def test_a_socket_in_service_is_refused_and_keeps_what_it_has(world: _World) -> None:
    conn, _, _ = await world.login()
    session = conn.session
    token = await world.token()
    await _refused(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}),
                   "Connection is in service", "in_service")
    await _refused(world.logins.relogin(conn, "ticket"), "Connection is in service", "in_service")
    assert conn.state is State.CONNECTED and conn.session is session and world.closed == []
    assert world.count("logins", "error", "in_service") is None


@pytest.mark.parametrize(("payload", "reason", "code"), [
    ({"protocol": "1.0"}, "unsupported protocol 1.0: this portal speaks OWT protocol 1.2", "unsupported_protocol"),
    ({"protocol": "1.1"}, "unsupported protocol 1.1: this portal speaks OWT protocol 1.2", "unsupported_protocol"),
    ({"protocol": "1.3"}, "Unknown client protocol", "unknown_protocol"),
    ({}, "Unknown client protocol", "unknown_protocol"),
])
async def test_a_login_with_another_protocol_is_refused_and_the_socket_closed(
        world: _World, payload: dict[str, Any], reason: str, code: str) -> None:
    conn = world.connection()
    token = await world.token()
    await _refused(world.logins.login(conn, {"token": world.encoded(token), **payload}), reason, code)
    assert conn.state is State.INITIALIZED
    await wait_until(lambda: world.closed == [conn.sid], what="the socket closed")
    assert world.count("logins", "error", code) == 1.0
    assert world.to(CLUSTER, "claim") == []


@pytest.mark.parametrize(("token_text", "reason", "code"), [
    ("bad signature", "Invalid token signature", "bad_signature"),
    ("not base64 json!", "Invalid token", "invalid_token"),
    ("expired", "Token expired", "token_expired"),
])
async def test_a_bad_token_is_refused_before_any_claim(world: _World, token_text: str, reason: str,
                                                       code: str) -> None:
    conn = world.connection()
    if token_text == "bad signature":
        token_text = world.encoded(await world.token(), Keyring(["another-key"]))
    elif token_text == "expired":
        token_text = world.encoded(await world.token(lifetime_ms=-1000))
    await _refused(world.logins.login(conn, {"token": token_text, "protocol": "1.2"}), reason, code)
    assert world.to(CLUSTER, "claim") == [] and world.count("logins", "error", code) == 1.0
    await wait_until(lambda: world.closed == [conn.sid], what="the socket closed")


async def test_a_refused_claim_is_the_clients_error_and_nothing_is_scheduled(world: _World) -> None:
    conn = world.connection()
    token = await world.token(reserve=False)
    await _refused(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}),
                   "Unknown token", "unknown_token")
    assert world.to(CLUSTER, "schedule") == [] and token.code not in world.worker.tasks
    assert len(world.to(CLUSTER, "claim")) == 1  # a refusal that is no "not yet" is not retried
    assert world.sleeps.asked == []


async def test_a_socket_closed_during_the_claim_is_refused_as_early_left(world: _World) -> None:
    conn = world.connection()
    token = await world.token()
    gate = world.harness.cluster_spy.hold_replies("claim")
    login = asyncio.ensure_future(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}))
    await wait_until(lambda: world.harness.cluster_spy.called("claim"), what="the claim")
    conn.move(State.CLOSED)
    gate.set()
    await _refused(login, "Participant early left", "early_left")
    assert world.to(CLUSTER, "schedule") == [] and len(world.sessions) == 0
    assert world.count("logins", "error", "early_left") == 1.0


async def test_a_socket_closed_during_the_join_leaves_and_ends_the_task(world: _World) -> None:
    conn = world.connection()
    token = await world.token()
    gate = world.harness.spy.hold_replies("join")
    login = asyncio.ensure_future(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}))
    await wait_until(lambda: world.harness.spy.called("join"), what="the join")
    conn.move(State.CLOSED)
    gate.set()
    await _refused(login, "Participant early left", "early_left")
    participant = world.harness.spy.called("join")[0]["participant"]["id"]
    assert world.to(CONTROLLER_ID, "leave") == [Sent("call", CONTROLLER_ID, "leave", {
        "participant": participant, "portal": PORTAL}, 2.5)]
    assert world.sessions.get(participant) is None and world.participants() == 0.0
    await wait_until(lambda: world.to(CLUSTER, "unschedule") or world.to(CLUSTER, "end_task")
                     or token.code not in world.worker.tasks, what="the token's task ended")
    assert token.code not in world.worker.tasks
    assert world.harness.member(participant) is None


async def test_a_join_that_fails_forgets_the_session_and_says_why(world: _World) -> None:
    conn = world.connection()
    token = await world.token()
    world.harness.spy.unreachable.add("join")
    await _refused(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}),
                   "join: injected failure", "unavailable")
    assert world.to(CONTROLLER_ID, "leave") == []  # refused: no join happened
    assert len(world.sessions) == 0 and conn.session is None and conn.state is State.INITIALIZED
    await wait_until(lambda: token.code not in world.worker.tasks, what="the token's task ended")


async def test_a_join_that_times_out_is_followed_by_a_leave(world: _World) -> None:
    conn = world.connection()
    token = await world.token()
    world.logins.settings = PortalSettings(**{**_fields(SETTINGS), "join_timeout": 0.05})
    gate = world.harness.spy.hold_replies("join")
    await _refused(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}), "timeout", "timeout")
    gate.set()
    participant = world.harness.spy.called("join")[0]["participant"]["id"]
    assert [s.args for s in world.to(CONTROLLER_ID, "leave")] == [{"participant": participant, "portal": PORTAL}]
    assert len(world.sessions) == 0


def _fields(settings: PortalSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__struct_fields__}


async def test_a_cluster_not_ready_is_retried_every_interval_within_the_budget(world: _World) -> None:
    await world.harness.real.stop()  # no conference worker: schedule answers "no worker available"
    conn = world.connection()
    token = await world.token()
    await _refused(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}),
                   "service unavailable", "unavailable")
    # budget 1.0, interval 0.25: tries at 0, 0.25, 0.5, 0.75 and 1.0 (a retry may end exactly at the budget)
    assert len(world.to(CLUSTER, "schedule")) == 5
    assert world.sleeps.asked == [0.25] * 4
    assert len(world.to(CLUSTER, "claim")) == 1


async def _scheduled_at_a_dead_controller(world: _World) -> str:
    """The manager schedules rooms at a registered controller nobody serves (it died, the manager has
    not noticed yet): the real one takes no new room for now."""
    dead = "conference-dead@test"
    await world.harness.transport.call(CLUSTER, "report_state", {"worker_id": CONTROLLER_ID, "state": "busy"})
    await world.harness.transport.call(CLUSTER, "join", {"purpose": "conference", "worker_id": dead, "info": {}})
    return dead


async def test_a_join_that_reached_no_controller_is_scheduled_and_made_again(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    dead = await _scheduled_at_a_dead_controller(world)

    removed: list[str] = []

    async def noticed(seconds: float) -> None:  # meanwhile the manager removed it
        if not removed:
            removed.append(dead)
            await world.harness.transport.call(CLUSTER, "quit", {"worker_id": dead})
            await world.harness.transport.call(CLUSTER, "report_state", {"worker_id": CONTROLLER_ID, "state": 2})
        await world.sleeps(seconds)

    world.logins._sleep = noticed
    conn, _, answer = await world.login()
    assert answer[0] == "ok" and conn.session is not None and conn.session.controller == CONTROLLER_ID
    assert [s.target for s in world.transport.of("join") if s.target != CLUSTER] == [dead, CONTROLLER_ID]
    assert world.sleeps.asked == [0.25]
    assert _logged(caplog, "join_rescheduled") == [(logging.INFO, {"worker": PORTAL, "room": conn.session.room,
                                                                   "lost": dead})]


async def test_a_join_that_reaches_no_controller_is_given_up_after_the_budget(world: _World) -> None:
    dead = await _scheduled_at_a_dead_controller(world)
    conn = world.connection()
    token = await world.token()
    await _refused(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}),
                   "service unavailable", "unavailable")
    # budget 1.0, interval 0.25: joins at 0, 0.25, 0.5, 0.75 and 1.0
    assert [s.target for s in world.transport.of("join") if s.target != CLUSTER] == [dead] * 5
    assert world.sleeps.asked == [0.25] * 4
    assert len(world.sessions) == 0


async def test_the_retries_stop_when_the_socket_closes(world: _World) -> None:
    await world.harness.real.stop()
    conn = world.connection()
    token = await world.token()
    world.sleeps.then.append(lambda: conn.move(State.CLOSED) if not conn.closed else None)
    await _refused(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}),
                   "service unavailable", "unavailable")
    assert len(world.to(CLUSTER, "schedule")) == 2 and world.sleeps.asked == [0.25]


# -- relogin ---------------------------------------------------------------------------------------


async def _held(world: _World, **payload: Any) -> tuple[str, str, Session]:
    """A participant logged in, then its socket lost (held by the controller); its id and ticket."""
    conn, _, answer = await world.login(**payload)
    assert isinstance(answer, tuple)
    session = conn.session
    assert session is not None
    world.logins.socket_lost(conn)
    await wait_until(lambda: world.harness.held(session.id), what="the hold")
    await wait_until(lambda: session.id not in world.sessions.holds, what="the hold done")
    return session.id, answer[1]["reconnectionTicket"], session


def _successor(keyring: Keyring, participant: str, ticket_id: str) -> str:
    signature = keyring.sign(f"{participant}:{ticket_id}".encode(), ROTATION_SALT)
    return hashlib.sha256(signature.encode()).hexdigest()[:24]


async def test_socket_lost_holds_the_participant_with_exactly_one_hold(world: _World) -> None:
    conn, token, _ = await world.login()
    session = conn.session
    assert session is not None
    world.logins.socket_lost(conn)
    assert conn.state is State.CLOSED and conn.session is None and session.phase is Phase.ENDED
    assert session.id in world.sessions.holds
    await wait_until(lambda: world.harness.held(session.id), what="the hold")
    await wait_until(lambda: session.id not in world.sessions.holds, what="the hold done")
    assert world.to(CONTROLLER_ID, "hold") == [Sent("call", CONTROLLER_ID, "hold", {
        "participant": session.id, "portal": PORTAL}, 2.5)]
    assert world.to(CONTROLLER_ID, "leave") == [] and world.participants() == 0.0
    await wait_until(lambda: token.code not in world.worker.tasks, what="the token's task ended")


async def test_a_lost_socket_without_participant_just_closes(world: _World) -> None:
    conn = world.connection()
    world.logins.socket_lost(conn)
    assert conn.state is State.CLOSED and world.sessions.holds == {}
    world.logins.socket_lost(conn)  # twice: still closed, nothing raised
    assert conn.state is State.CLOSED


async def test_a_relogin_with_the_owt_ticket_string_answers_the_new_ticket(world: _World) -> None:
    participant, ticket_text, old = await _held(world)
    seqs = [world.harness.notify(participant, "text", {"n": n}) for n in (1, 2)]
    conn = world.connection()
    answer = await world.logins.relogin(conn, ticket_text)
    assert isinstance(answer, tuple) and answer[0] == "ok" and isinstance(answer[1], str)
    old_ticket = decode_ticket(ticket_text, world.harness.keyring)
    new_ticket_id = _successor(world.harness.keyring, participant, old_ticket.ticket_id)
    ticket = decode_ticket(answer[1], world.harness.keyring)
    assert (ticket.participant_id, ticket.ticket_id, ticket.room) == (participant, new_ticket_id, "room-1")
    assert ticket.not_after - ticket.not_before == 120_000
    assert world.to(CLUSTER, "get_scheduled") == [Sent("call", CLUSTER, "get_scheduled", {
        "purpose": "conference", "task": "room-1"}, 1.5)]
    assert world.to(CONTROLLER_ID, "resume") == [Sent("call", CONTROLLER_ID, "resume", {
        "participant": participant, "ticket_id": old_ticket.ticket_id, "new_ticket_id": new_ticket_id,
        "portal": PORTAL, "last_seq": None, "room": "room-1"}, 2.5)]
    session = world.sessions.get(participant)
    assert session is not None and session is not old and conn.session is session
    assert conn.state is State.CONNECTED and conn.relogging is False and session.extension is False
    assert (session.controller, session.ticket_id, session.epoch) == (CONTROLLER_ID, new_ticket_id, 1)
    # the missed notifications are emitted after the ack, as OWT events without seq
    await wait_until(lambda: len(world.sio.emitted) == 2, what="the replay")
    assert world.sio.emitted == [("text", {"n": 1}, conn.sid), ("text", {"n": 2}, conn.sid)]
    assert session.last_seq == seqs[-1]
    assert world.count("relogins", "ok", "") == 1.0 and world.participants() == 1.0


async def test_an_owt_relogin_with_nothing_missed_starts_at_seq_zero(world: _World) -> None:
    participant, ticket_text, _ = await _held(world)
    conn = world.connection()
    await world.logins.relogin(conn, ticket_text)
    session = world.sessions.get(participant)
    assert session is not None and session.last_seq == 0


async def test_an_owt_relogin_counts_from_just_before_the_first_missed_seq(world: _World) -> None:
    participant, ticket_text, _ = await _held(world)
    first = world.harness.notify(participant, "text", {"n": 1})
    world.harness.notify(participant, "text", {"n": 2})
    conn = world.connection()
    gate = world.harness.spy.hold_replies("resume")
    relogin = asyncio.ensure_future(world.logins.relogin(conn, ticket_text))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    session = world.sessions.get(participant)
    assert session is not None and session.phase is Phase.PENDING and conn.relogging is True
    gate.set()
    await relogin
    # set to first - 1 before the replay is emitted (which moves it on)
    await wait_until(lambda: len(world.sio.emitted) == 2, what="the replay")
    assert first >= 1 and session.last_seq == first + 1


async def test_a_structured_relogin_answers_ticket_last_seq_and_messages(world: _World) -> None:
    participant, ticket_text, _ = await _held(world, extension=True)
    seq1 = world.harness.notify(participant, "text", {"n": 1})
    seq2 = world.harness.notify(participant, "stream", ["x"])
    conn = world.connection()
    key = "k" * 20
    answer = await world.logins.relogin(conn, {"ticket": ticket_text, "lastSeq": seq1 - 1, "retryKey": key})
    assert isinstance(answer, tuple) and answer[0] == "ok"
    result = answer[1]
    assert sorted(result) == ["alternatives", "lastSeq", "messages", "ticket"]
    assert result["lastSeq"] == seq2
    assert result["messages"] == [{"seq": seq1, "event": "text", "data": {"n": 1, "seq": seq1}},
                                  {"seq": seq2, "event": "stream", "data": {"data": ["x"], "seq": seq2}}]
    old_ticket = decode_ticket(ticket_text, world.harness.keyring)
    assert world.to(CONTROLLER_ID, "resume")[0].args == {
        "participant": participant, "ticket_id": old_ticket.ticket_id,
        "new_ticket_id": _successor(world.harness.keyring, participant, old_ticket.ticket_id),
        "portal": PORTAL, "last_seq": seq1 - 1, "room": "room-1",
        "retry_key": hashlib.sha256(RETRY_KEY_SALT + key.encode()).hexdigest()}
    session = world.sessions.get(participant)
    assert session is not None and session.extension is True and session.last_seq == seq2
    assert world.sio.emitted == []  # the messages are in the answer, not emitted again


async def test_a_structured_relogin_with_nothing_missed_keeps_its_last_seq(world: _World) -> None:
    participant, ticket_text, _ = await _held(world, extension=True)
    seq = world.harness.notify(participant, "text", {"n": 1})
    conn = world.connection()
    answer = await world.logins.relogin(conn, {"ticket": ticket_text, "lastSeq": seq})
    assert isinstance(answer, tuple) and answer[1]["messages"] == [] and answer[1]["lastSeq"] == seq
    assert "retry_key" not in (world.to(CONTROLLER_ID, "resume")[0].args or {})
    session = world.sessions.get(participant)
    assert session is not None and session.last_seq == seq


async def test_a_structured_relogin_without_last_seq_starts_at_zero(world: _World) -> None:
    participant, ticket_text, _ = await _held(world, extension=True)
    conn = world.connection()
    answer = await world.logins.relogin(conn, {"ticket": ticket_text})
    assert isinstance(answer, tuple) and answer[1]["messages"] == []
    session = world.sessions.get(participant)
    assert session is not None and session.last_seq == 0


@pytest.mark.parametrize(("ticket", "reason", "code"), [
    ("garbage", "Invalid reconnection ticket", "invalid_ticket"),
    ("bad signature", "Invalid reconnection ticket signature", "bad_signature"),
    ("expired", "Ticket is expired", "ticket_expired"),
])
async def test_a_bad_ticket_is_refused_and_the_socket_closed(world: _World, ticket: str, reason: str,
                                                             code: str) -> None:
    if ticket != "garbage":
        now = now_ms()
        made = Ticket(participant_id="p", ticket_id="t", room="room-1", not_before=now - 10_000,
                      not_after=now - 1 if ticket == "expired" else now + 10_000)
        ticket = encode_ticket(made, Keyring(["another-key"]) if ticket == "bad signature" else world.harness.keyring)
    conn = world.connection()
    await _refused(world.logins.relogin(conn, ticket), reason, code)
    assert conn.state is State.INITIALIZED and conn.relogging is False
    assert world.count("relogins", "error", code) == 1.0
    await wait_until(lambda: world.closed == [conn.sid], what="the socket closed")
    assert world.to(CLUSTER, "get_scheduled") == []


def _unplaced_ticket(world: _World) -> str:
    """A valid ticket of a participant of a room nobody runs."""
    now = now_ms()
    return encode_ticket(Ticket(participant_id="p", ticket_id="t", room="nowhere", not_before=now,
                                not_after=now + 10_000), world.harness.keyring)


async def test_a_relogin_to_a_room_nobody_runs_is_placed_and_unknown_without_a_journal(world: _World) -> None:
    await _refused(world.logins.relogin(world.connection(), _unplaced_ticket(world)), "Client does NOT exist",
                   "unknown_participant")
    # The room is scheduled (its controller may be gone: another one rebuilds it from the journal);
    # this controller has no journal, so it does not know the participant.
    assert world.to(CLUSTER, "schedule") == [Sent("call", CLUSTER, "schedule", {
        "purpose": "conference", "task": "nowhere", "preference": {}, "reserve_time": 12.0}, 1.5)]
    assert [(s.args or {}).get("room") for s in world.to(CONTROLLER_ID, "resume")] == ["nowhere"]
    assert len(world.sessions) == 0


async def test_a_relogin_retries_placing_a_room_the_cluster_cannot_place_yet(world: _World) -> None:
    world.harness.cluster_spy.refuse_next("schedule", "no_worker_available", "not yet")
    await _refused(world.logins.relogin(world.connection(), _unplaced_ticket(world)), "Client does NOT exist",
                   "unknown_participant")
    assert len(world.to(CLUSTER, "schedule")) == 2 and world.sleeps.asked == [0.25]
    assert len(world.to(CONTROLLER_ID, "resume")) == 1


async def test_a_refused_resume_says_why_and_leaves_nothing_here(world: _World) -> None:
    await world.login()  # the room runs
    now = now_ms()
    ticket = encode_ticket(Ticket(participant_id="nobody", ticket_id="t", room="room-1", not_before=now,
                                  not_after=now + 10_000), world.harness.keyring)
    conn = world.connection()
    await _refused(world.logins.relogin(conn, ticket), "Client does NOT exist", "unknown_participant")
    assert world.sessions.get("nobody") is None and conn.state is State.INITIALIZED
    assert world.count("relogins", "error", "unknown_participant") == 1.0


async def test_a_relogin_while_the_old_socket_is_open_takes_it_over(world: _World) -> None:
    old_conn, _, answer = await world.login()
    assert isinstance(answer, tuple)
    old = old_conn.session
    assert old is not None
    conn = world.connection()
    await world.logins.relogin(conn, answer[1]["reconnectionTicket"])
    session = world.sessions.get(old.id)
    assert session is not None and session is not old and conn.session is session
    assert old.phase is Phase.ENDED and old_conn.session is None
    assert old_conn.state is State.WAITING_FOR_RECONNECTING
    await wait_until(lambda: world.closed_transports == [old_conn.sid], what="the old socket closed")
    assert world.sio.emitted == [("drop", None, old_conn.sid)] and world.closed == []
    assert world.to(CONTROLLER_ID, "hold") == [] and world.to(CONTROLLER_ID, "leave") == []


async def test_a_failed_relogin_gives_the_old_socket_back_its_session_and_notes(world: _World) -> None:
    old_conn, _, answer = await world.login()
    assert isinstance(answer, tuple)
    old = old_conn.session
    assert old is not None
    conn = world.connection()
    world.harness.spy.unreachable.add("resume")
    await _refused(world.logins.relogin(conn, answer[1]["reconnectionTicket"]), "resume: injected failure",
                   "unavailable")
    assert world.sessions.get(old.id) is old and old_conn.session is old and old_conn.state is State.CONNECTED
    assert old.phase is Phase.LIVE and world.closed_transports == [] and world.sio.emitted == []


async def test_a_failed_relogin_delivers_what_came_meanwhile_to_the_old_socket(world: _World) -> None:
    old_conn, _, answer = await world.login()
    assert isinstance(answer, tuple)
    old = old_conn.session
    assert old is not None
    conn = world.connection()
    stalled = world.harness.spy.stall_calls("resume")
    world.harness.spy.lose_replies("resume")
    pending = asyncio.ensure_future(world.logins.relogin(conn, answer[1]["reconnectionTicket"]))
    await wait_until(lambda: world.sessions.get(old.id) is not old, what="the relogin's session")
    new = world.sessions.get(old.id)
    assert new is not None
    new.hold_back(Notification("text", {"n": 1}, None))
    stalled.set()
    await _refused(pending, "resume: the reply was lost (injected)", "unavailable")
    assert world.sio.emitted == [("text", {"n": 1}, old_conn.sid)]


async def test_a_relogin_superseded_while_its_answer_came_is_refused(world: _World) -> None:
    participant, ticket_text, _ = await _held(world)
    conn = world.connection()
    gate = world.harness.spy.hold_replies("resume")
    pending = asyncio.ensure_future(world.logins.relogin(conn, ticket_text))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    world.logins.displace(participant, 1)  # equal to its own epoch: not superseded
    gate.set()
    await pending
    participant2, ticket2, _ = await _held(world)
    conn2 = world.connection()
    gate2 = world.harness.spy.hold_replies("resume")
    pending2 = asyncio.ensure_future(world.logins.relogin(conn2, ticket2))
    await wait_until(lambda: len(world.harness.spy.called("resume")) == 2, what="the second resume")
    session = world.sessions.get(participant2)
    assert session is not None
    world.logins.displace(participant2, 5)
    world.logins.displace(participant2, 3)  # the highest epoch is kept
    assert session.displaced_by == 5
    gate2.set()
    await _refused(pending2, "Participant is connected elsewhere", "displaced")
    assert world.sessions.get(participant2) is None and conn2.state is State.INITIALIZED


async def test_a_socket_closed_during_the_relogin_holds_the_participant_again(world: _World) -> None:
    participant, ticket_text, _ = await _held(world)
    holds = len(world.to(CONTROLLER_ID, "hold"))
    conn = world.connection()
    gate = world.harness.spy.hold_replies("resume")
    pending = asyncio.ensure_future(world.logins.relogin(conn, ticket_text))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    conn.move(State.CLOSED)
    gate.set()
    await _refused(pending, "Participant early left", "early_left")
    await wait_until(lambda: len(world.to(CONTROLLER_ID, "hold")) == holds + 1, what="the hold again")
    await wait_until(lambda: world.harness.held(participant), what="held again")
    assert world.sessions.get(participant) is None


async def test_a_relogin_waits_for_this_portals_hold_to_reach_the_controller(world: _World) -> None:
    conn, _, answer = await world.login()
    assert isinstance(answer, tuple)
    gate = world.harness.spy.hold_replies("hold")
    world.logins.socket_lost(conn)
    new = world.connection()
    pending = asyncio.ensure_future(world.logins.relogin(new, answer[1]["reconnectionTicket"]))
    await wait_until(lambda: world.harness.spy.called("hold"), what="the hold")
    assert world.to(CLUSTER, "get_scheduled") == []
    gate.set()
    result = await pending
    assert isinstance(result, tuple) and result[0] == "ok"


# -- displace --------------------------------------------------------------------------------------


async def test_displace_closes_an_older_socket_and_spares_a_newer_one(world: _World) -> None:
    conn, _, _ = await world.login()
    session = conn.session
    assert session is not None
    world.logins.displace("nobody", 3)  # unknown: nothing
    world.logins.displace(session.id, 0)  # not newer than its epoch 0
    assert world.sessions.get(session.id) is session and conn.state.value == "connected"
    world.logins.displace(session.id, 1)
    assert world.sessions.get(session.id) is None and conn.state is State.WAITING_FOR_RECONNECTING
    await wait_until(lambda: world.closed_transports == [conn.sid], what="the socket closed")
    assert world.sio.emitted == [("drop", None, conn.sid)]


# -- logout, refresh, drop -------------------------------------------------------------------------


async def test_logout_leaves_and_closes_the_socket(world: _World) -> None:
    conn, token, _ = await world.login()
    session = conn.session
    assert session is not None
    assert await world.logins.logout(conn) == "ok"
    assert conn.state is State.INITIALIZED and conn.session is None and session.phase is Phase.ENDED
    assert world.sessions.get(session.id) is None and world.participants() == 0.0
    assert world.to(CONTROLLER_ID, "leave") == [Sent("call", CONTROLLER_ID, "leave", {
        "participant": session.id, "portal": PORTAL}, 2.5)]
    await wait_until(lambda: world.closed == [conn.sid], what="the socket closed")
    await wait_until(lambda: token.code not in world.worker.tasks, what="the token's task ended")
    assert world.harness.member(session.id) is None
    await _refused(world.logins.logout(conn), "Illegal request", "illegal_request")


async def test_a_failed_leave_at_logout_still_logs_out(world: _World) -> None:
    conn, _, _ = await world.login()
    world.harness.spy.unreachable.add("leave")
    assert await world.logins.logout(conn) == "ok"
    assert conn.state is State.INITIALIZED and len(world.sessions) == 0


async def test_refresh_rotates_the_ticket(world: _World) -> None:
    conn, _, _ = await world.login()
    session = conn.session
    assert session is not None
    before = session.ticket_id
    answer = await world.logins.refresh(conn)
    assert isinstance(answer, tuple) and answer[0] == "ok"
    ticket = decode_ticket(answer[1], world.harness.keyring)
    assert ticket.ticket_id == session.ticket_id != before
    assert (ticket.participant_id, ticket.room) == (session.id, "room-1")
    assert ticket.not_after - ticket.not_before == 120_000
    assert world.to(CONTROLLER_ID, "refresh_ticket") == [Sent("call", CONTROLLER_ID, "refresh_ticket", {
        "participant": session.id, "ticket_id": before, "new_ticket_id": session.ticket_id, "portal": PORTAL},
        2.5)]


async def test_a_refused_refresh_keeps_the_ticket_and_says_why(world: _World) -> None:
    conn, _, _ = await world.login()
    session = conn.session
    assert session is not None
    before = session.ticket_id
    world.harness.spy.unreachable.add("refresh_ticket")
    await _refused(world.logins.refresh(conn), "refresh_ticket: injected failure", "unavailable")
    assert session.ticket_id == before
    await _refused(world.logins.refresh(world.connection()), "Illegal request", "illegal_request")


async def test_drop_emits_drop_and_closes_the_socket(world: _World) -> None:
    conn, token, _ = await world.login()
    session = conn.session
    assert session is not None
    await world.logins.drop(session, "controller lost")
    assert world.sio.emitted == [("drop", None, conn.sid)] and world.closed == [conn.sid]
    assert conn.state is State.INITIALIZED and conn.session is None
    assert world.sessions.get(session.id) is None and world.participants() == 0.0
    await wait_until(lambda: token.code not in world.worker.tasks, what="the token's task ended")
    await world.logins.drop(session, "again")  # its socket moved on: nothing more
    assert world.closed == [conn.sid]


# -- what is logged, acks, races -------------------------------------------------------------------


def _logged(caplog: pytest.LogCaptureFixture, event: str) -> list[tuple[int, dict[str, Any]]]:
    """``(level, fields)`` of every ``event`` the portal logged."""
    return [(record.levelno, getattr(record, "fields")) for record in caplog.records
            if record.name == "switchboard.portal" and getattr(record, "event", None) == event]


def _of(session: Session, **fields: Any) -> dict[str, Any]:
    return {"worker": PORTAL, "participant": session.id, "room": session.room, **fields}


async def test_login_logout_and_drop_are_logged(world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, _, _ = await world.login(extension=True)
    session = conn.session
    assert session is not None
    assert _logged(caplog, "login") == [(logging.INFO, _of(session, controller=CONTROLLER_ID, extension=True))]
    await world.logins.logout(conn)
    assert _logged(caplog, "logout") == [(logging.INFO, _of(session))]
    conn2, _, _ = await world.login()
    dropped = conn2.session
    assert dropped is not None
    await world.logins.drop(dropped, "controller lost")
    assert _logged(caplog, "drop") == [(logging.INFO, _of(dropped, reason="controller lost"))]


async def test_a_failed_leave_is_logged_with_its_code(world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, _, _ = await world.login()
    session = conn.session
    assert session is not None
    world.harness.spy.unreachable.add("leave")
    await world.logins.logout(conn)
    assert _logged(caplog, "leave_failed") == [(logging.INFO, _of(session, error="unavailable"))]


async def test_holds_and_failed_holds_are_logged(world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    participant, _, session = await _held(world)
    assert _logged(caplog, "hold") == [(logging.INFO, _of(session))]
    conn, _, _ = await world.login()
    other = conn.session
    assert other is not None
    world.harness.spy.unreachable.add("hold")
    world.logins.socket_lost(conn)
    await wait_until(lambda: _logged(caplog, "hold_failed"), what="the failed hold")
    assert _logged(caplog, "hold_failed") == [(logging.WARNING, _of(other, error="unavailable",
                                                                    message="hold: injected failure"))]
    assert participant != other.id


async def test_relogins_are_logged(world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    participant, ticket_text, _ = await _held(world, extension=True)
    world.harness.notify(participant, "text", {"n": 1})
    await world.logins.relogin(world.connection(), {"ticket": ticket_text, "lastSeq": 0})
    session = world.sessions.get(participant)
    assert session is not None
    assert _logged(caplog, "relogin") == [(logging.INFO, _of(session, controller=CONTROLLER_ID, missed=1,
                                                             extension=True))]


async def test_displace_and_a_superseded_relogin_are_logged(world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, _, _ = await world.login()
    session = conn.session
    assert session is not None
    world.logins.displace(session.id, 2)
    assert _logged(caplog, "displaced") == [(logging.INFO, _of(session, epoch=2))]
    participant, ticket_text, _ = await _held(world)
    gate = world.harness.spy.hold_replies("resume")
    pending = asyncio.ensure_future(world.logins.relogin(world.connection(), ticket_text))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    world.logins.displace(participant, 4)
    relogging = world.sessions.get(participant)
    assert relogging is not None
    gate.set()
    await _refused(pending, "Participant is connected elsewhere", "displaced")
    assert _logged(caplog, "relogin_superseded") == [(logging.INFO, _of(relogging, epoch=1, by=4))]


async def test_abandoned_logins_and_relogins_are_logged(world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn = world.connection()
    token = await world.token()
    gate = world.harness.spy.hold_replies("join")
    login = asyncio.ensure_future(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}))
    await wait_until(lambda: world.harness.spy.called("join"), what="the join")
    conn.move(State.CLOSED)
    gate.set()
    await _refused(login, "Participant early left", "early_left")
    participant = world.harness.spy.called("join")[0]["participant"]["id"]
    assert [(level, fields["participant"], fields["reason"]) for level, fields in
            _logged(caplog, "login_abandoned")] == [(logging.INFO, participant, "socket closed during login")]
    world.harness.spy.stop_holding("join")
    held, ticket_text, _ = await _held(world)
    conn2 = world.connection()
    gate2 = world.harness.spy.hold_replies("resume")
    relogin = asyncio.ensure_future(world.logins.relogin(conn2, ticket_text))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    conn2.move(State.CLOSED)
    gate2.set()
    await _refused(relogin, "Participant early left", "early_left")
    assert [(level, fields["participant"], fields["reason"]) for level, fields in
            _logged(caplog, "relogin_abandoned")] == [(logging.INFO, held, "socket closed during relogin")]


async def test_cluster_retries_are_logged(world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    await world.harness.real.stop()
    conn = world.connection()
    token = await world.token()
    await _refused(world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"}),
                   "service unavailable", "unavailable")
    assert _logged(caplog, "cluster_not_ready") == [
        (logging.DEBUG, {"worker": PORTAL, "method": "schedule", "error": "no_worker_available"})] * 4


async def test_logout_sends_the_participants_pending_acks_before_it_leaves(world: _World) -> None:
    conn, _, _ = await world.login()
    session = conn.session
    assert session is not None
    other, _, _ = await world.login()
    assert other.session is not None
    world.logins.acks.note(session, 3)
    world.logins.acks.note(other.session, 4)  # another participant's: not yet
    await world.logins.logout(conn)
    sent = [(s.method, s.args) for s in world.transport.sent
            if s.target == CONTROLLER_ID and s.method in ("ack_many", "leave")]
    assert sent == [("ack_many", {"acks": {session.id: 3}, "portal": PORTAL, "unconfirmed": [session.id]}),
                    ("leave", {"participant": session.id, "portal": PORTAL})]


async def test_a_taken_over_session_loses_the_acks_noted_since(world: _World) -> None:
    old_conn, _, answer = await world.login()
    assert isinstance(answer, tuple)
    old = old_conn.session
    assert old is not None
    gate = world.harness.spy.hold_replies("resume")
    pending = asyncio.ensure_future(world.logins.relogin(world.connection(), answer[1]["reconnectionTicket"]))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    world.logins.acks.note(old, 7)  # the old socket still acks meanwhile
    gate.set()
    await pending
    await world.logins.acks.flush()
    assert world.to(CONTROLLER_ID, "ack_many") == []


async def test_a_relogin_takes_over_another_relogin_still_in_flight(world: _World,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    participant, ticket_text, _ = await _held(world, extension=True)
    request = {"ticket": ticket_text, "retryKey": "r" * 16}
    gate = world.harness.spy.hold_replies("resume")
    first_conn = world.connection()
    first = asyncio.ensure_future(world.logins.relogin(first_conn, request))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the first resume")
    taken = world.sessions.get(participant)
    assert taken is not None
    world.harness.spy.stop_holding("resume")
    conn = world.connection()
    answer = await world.logins.relogin(conn, request)  # the same request again: its answer never came
    assert isinstance(answer, tuple) and answer[0] == "ok"
    assert world.sessions.get(participant) is conn.session
    gate.set()
    await _refused(first, "Participant is connected elsewhere", "displaced")  # the retry has it
    retried = conn.session
    assert retried is not None and world.sessions.get(participant) is retried and retried.phase is Phase.LIVE
    assert first_conn.session is None and first_conn.state is State.INITIALIZED and first_conn.relogging is False
    await wait_until(lambda: world.closed == [first_conn.sid], what="the first socket closed")
    assert world.count("relogins", "error", "displaced") == 1.0 and world.count("relogins", "ok", "") == 1.0
    assert _logged(caplog, "relogin_taken_over") == [(logging.INFO, _of(taken))]
    await world.logins.background.stop(grace=10)  # returns once what it started has finished
    assert world.to(CONTROLLER_ID, "hold") == [Sent("call", CONTROLLER_ID, "hold", {
        "participant": participant, "portal": PORTAL}, 2.5)]  # the loss's only: the refused one holds nothing


async def test_a_relogin_taken_over_by_its_retry_still_closes_the_socket_it_took_over(world: _World) -> None:
    old_conn, _, answer = await world.login(extension=True)
    assert isinstance(answer, tuple)
    participant = answer[1]["id"]
    request = {"ticket": answer[1]["reconnectionTicket"], "retryKey": "r" * 16}
    gate = world.harness.spy.hold_replies("resume")
    first = asyncio.ensure_future(world.logins.relogin(world.connection(), request))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the first resume")
    world.harness.spy.stop_holding("resume")
    conn = world.connection()
    assert (await world.logins.relogin(conn, request))[0] == "ok"
    assert old_conn.session is not None  # the retry took over the first relogin, not the old socket
    gate.set()
    await _refused(first, "Participant is connected elsewhere", "displaced")
    assert old_conn.session is None and old_conn.state is State.WAITING_FOR_RECONNECTING
    await wait_until(lambda: world.closed_transports == [old_conn.sid], what="the old socket closed")
    assert ("drop", None, old_conn.sid) in world.sio.emitted
    assert world.sessions.get(participant) is conn.session


async def test_a_relogin_that_fails_after_its_retry_took_over_leaves_the_participant_to_the_retry(
        world: _World) -> None:
    old_conn, _, answer = await world.login(extension=True)
    assert isinstance(answer, tuple)
    participant = answer[1]["id"]
    request = {"ticket": answer[1]["reconnectionTicket"], "retryKey": "r" * 16}
    stalled = world.harness.spy.stall_calls("resume")
    world.harness.spy.lose_replies("resume")  # the first relogin's resume: served, its answer lost
    first = asyncio.ensure_future(world.logins.relogin(world.connection(), request))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the first resume")
    retried = world.harness.spy.stall_calls("resume")  # the retry's resume waits too
    conn = world.connection()
    retry = asyncio.ensure_future(world.logins.relogin(conn, request))
    await wait_until(lambda: len(world.harness.spy.called("resume")) == 2, what="the retry's resume")
    stalled.set()
    await _refused(first, "resume: the reply was lost (injected)", "unavailable")
    registered = world.sessions.get(participant)
    assert registered is not None and registered is not old_conn.session  # the retry's, not the old socket's
    await wait_until(lambda: world.closed_transports == [old_conn.sid], what="the old socket closed")
    assert old_conn.session is None and ("drop", None, old_conn.sid) in world.sio.emitted
    retried.set()
    assert (await retry)[0] == "ok"
    assert world.sessions.get(participant) is conn.session


# -- re-attach after a partition -------------------------------------------------------------------


async def _partitioned(world: _World) -> tuple[Connection, Session]:
    """A live participant whose controller holds it although its socket is still here (the cluster
    declared the portal lost); it got one notification before."""
    conn, _, _ = await world.login()
    session = conn.session
    assert session is not None
    world.harness.notify(session.id, "text", {"n": 0})
    await wait_until(lambda: session.last_seq == 1, what="the first notification")
    await world.harness.transport.call(CONTROLLER_ID, "hold", {"participant": session.id, "portal": PORTAL})
    return conn, session


async def test_reattach_resumes_with_the_same_ticket_and_emits_what_was_missed(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session = await _partitioned(world)
    world.harness.notify(session.id, "text", {"n": 1})
    world.harness.notify(session.id, "text", {"n": 2})
    ticket_id = session.ticket_id
    await world.logins.reattach(session)
    assert world.to(CONTROLLER_ID, "resume") == [Sent("call", CONTROLLER_ID, "resume", {
        "participant": session.id, "ticket_id": ticket_id, "new_ticket_id": ticket_id, "portal": PORTAL,
        "last_seq": 1, "room": "room-1"}, 2.5)]
    assert world.sio.emitted == [("text", {"n": 0}, conn.sid), ("text", {"n": 1}, conn.sid),
                                 ("text", {"n": 2}, conn.sid)]
    assert (session.epoch, session.phase, session.last_seq, session.ticket_id) == (1, Phase.LIVE, 3, ticket_id)
    assert world.sessions.get(session.id) is session and not world.harness.held(session.id)
    assert _logged(caplog, "reattached") == [(logging.INFO, _of(session, missed=2, epoch=1))]


async def test_reattach_leaves_alone_a_session_not_registered_or_not_live(world: _World) -> None:
    conn, session = await _partitioned(world)
    pending = Session(id="pending", room="room-1", portal_log=EventLog(), controller=CONTROLLER_ID, sid="s")
    world.sessions.add(pending)  # registered, a login still in flight
    await world.logins.reattach(pending)
    stale = Session(id=session.id, room="room-1", portal_log=EventLog(), controller=CONTROLLER_ID, sid=conn.sid,
                    phase=Phase.LIVE)  # live, but not the registered one
    await world.logins.reattach(stale)
    assert world.to(CONTROLLER_ID, "resume") == []
    assert pending.phase is Phase.PENDING and stale.phase is Phase.LIVE


@pytest.mark.parametrize("code", ["unknown_participant", "hold_expired", "resync_required"])
async def test_reattach_of_a_participant_that_is_gone_drops_it(world: _World, caplog: pytest.LogCaptureFixture,
                                                               code: str) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session = await _partitioned(world)
    world.harness.spy.refuse_next("resume", code, "gone")
    await world.logins.reattach(session)
    assert world.sio.emitted[-1] == ("drop", None, conn.sid) and world.closed == [conn.sid]
    assert world.sessions.get(session.id) is None and conn.state is State.INITIALIZED
    assert _logged(caplog, "reattach_refused") == [(logging.INFO, _of(session, error=code))]
    assert _logged(caplog, "drop") == [(logging.INFO, _of(session, reason=f"session lost: {code}"))]


async def test_reattach_of_a_participant_taken_by_another_socket_closes_this_one(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session = await _partitioned(world)
    world.harness.spy.refuse_next("resume", "ticket_mismatch", "moved on")
    await world.logins.reattach(session)
    assert world.sessions.get(session.id) is None and conn.state is State.WAITING_FOR_RECONNECTING
    await wait_until(lambda: world.closed_transports == [conn.sid], what="the socket closed")
    assert world.sio.emitted[-1] == ("drop", None, conn.sid) and world.closed == []
    assert _logged(caplog, "reattach_refused") == [(logging.INFO, _of(session, error="ticket_mismatch"))]


@pytest.mark.parametrize("code", ["unavailable", "busy"])
async def test_a_reattach_that_fails_otherwise_keeps_the_session_as_it_was(
        world: _World, caplog: pytest.LogCaptureFixture, code: str) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session = await _partitioned(world)
    world.harness.spy.refuse_next("resume", code, "try later")
    await world.logins.reattach(session)
    assert world.sessions.get(session.id) is session and session.phase is Phase.LIVE
    assert conn.state is State.CONNECTED and world.closed == [] and world.closed_transports == []
    assert _logged(caplog, "reattach_failed") == [(logging.WARNING, _of(session, error=code))]
    assert _logged(caplog, "reattach_refused") == []


async def test_a_reattach_that_fails_after_the_session_was_replaced_does_nothing_more(world: _World) -> None:
    conn, session = await _partitioned(world)
    stall = world.harness.spy.stall_calls("resume")
    world.harness.spy.refuse_next("resume", "unknown_participant", "gone")
    pending = asyncio.ensure_future(world.logins.reattach(session))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    world.sessions.remove(session)
    world.sessions.add(Session(id=session.id, room="room-1", portal_log=EventLog(), controller=CONTROLLER_ID))
    stall.set()
    await pending
    assert world.closed == [] and conn.state is State.CONNECTED
    assert ("drop", None, conn.sid) not in world.sio.emitted


async def test_a_socket_closed_during_the_reattach_is_held_again(world: _World,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session = await _partitioned(world)
    gate = world.harness.spy.hold_replies("resume")
    pending = asyncio.ensure_future(world.logins.reattach(session))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    world.sessions.remove(session)  # what the socket's end does to it (phase ENDED)
    gate.set()
    await pending
    assert _logged(caplog, "reattach_abandoned") == [
        (logging.INFO, _of(session, reason="socket closed during the re-attach"))]
    await wait_until(lambda: world.harness.held(session.id), what="held again")
    assert [s.args for s in world.to(CONTROLLER_ID, "hold")] == [{"participant": session.id, "portal": PORTAL}]
    assert world.sio.emitted == [("text", {"n": 0}, conn.sid)]


async def test_a_reattach_displaced_meanwhile_closes_the_socket(world: _World) -> None:
    conn, session = await _partitioned(world)
    gate = world.harness.spy.hold_replies("resume")
    pending = asyncio.ensure_future(world.logins.reattach(session))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    session.displaced_by = 1  # a displace with its own epoch: not newer
    gate.set()
    await pending
    assert world.sessions.get(session.id) is session and conn.state is State.CONNECTED
    world.harness.spy.stop_holding("resume")
    await world.harness.transport.call(CONTROLLER_ID, "hold", {"participant": session.id, "portal": PORTAL})
    gate = world.harness.spy.hold_replies("resume")
    pending = asyncio.ensure_future(world.logins.reattach(session))
    await wait_until(lambda: len(world.harness.spy.called("resume")) == 2, what="the second resume")
    session.displaced_by = 3  # a relogin elsewhere was accepted after this resume
    gate.set()
    await pending
    assert session.epoch == 2 and world.sessions.get(session.id) is None
    await wait_until(lambda: world.closed_transports == [conn.sid], what="the socket closed")


# -- a lost controller: rehome ---------------------------------------------------------------------

LOST = "conference-lost@test"


def _schedules(world: _World, since: int = 0) -> list[Sent]:
    return world.to(CLUSTER, "schedule")[since:]


def _room_schedule() -> Sent:
    return Sent("call", CLUSTER, "schedule", {"purpose": "conference", "task": "room-1", "preference": {},
                                              "reserve_time": 12.0}, 1.5)


async def _orphaned(world: _World) -> tuple[Connection, Session, int]:
    """A live participant whose controller (``LOST``) was lost; the room is now scheduled on
    ``CONTROLLER_ID``, which holds the participant (as a controller rebuilding it from the journal
    would).  Also how many ``schedule`` calls were sent before."""
    conn, session = await _partitioned(world)
    session.controller = LOST
    return conn, session, len(_schedules(world))


async def test_rehome_moves_the_session_to_the_controller_the_room_is_scheduled_on(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session, before = await _orphaned(world)
    world.harness.notify(session.id, "text", {"n": 1})
    await world.logins.rehome(session.room, [session], LOST, asyncio.Semaphore(8))
    assert _schedules(world, before) == [_room_schedule()] and world.sleeps.asked == []
    assert session.controller == CONTROLLER_ID and [s.target for s in world.to(CONTROLLER_ID, "resume")] == [
        CONTROLLER_ID]
    assert world.sio.emitted == [("text", {"n": 0}, conn.sid), ("text", {"n": 1}, conn.sid)]
    assert world.sessions.get(session.id) is session and session.live and not world.harness.held(session.id)
    assert _logged(caplog, "failed_over") == [(logging.INFO, _of(session, lost=LOST, controller=CONTROLLER_ID,
                                                                 attempt=1))]
    assert _logged(caplog, "failover_failed") == [] and world.closed == []


async def test_rehome_to_a_named_controller_reattaches_there_without_asking_the_cluster_even_the_same_one(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    # A controller that rebuilt the room after a lost journal write names itself (room_moved's ``to``).
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session = await _partitioned(world)
    before = len(_schedules(world))
    await world.logins.rehome(session.room, [session], CONTROLLER_ID, asyncio.Semaphore(8), to=CONTROLLER_ID)
    assert _schedules(world, before) == [] and world.sleeps.asked == []
    assert [s.target for s in world.to(CONTROLLER_ID, "resume")] == [CONTROLLER_ID]
    assert world.sessions.get(session.id) is session and session.live and not world.harness.held(session.id)
    assert _logged(caplog, "failed_over") == [(logging.INFO, _of(session, lost=CONTROLLER_ID,
                                                                 controller=CONTROLLER_ID, attempt=1))]
    assert world.closed == [] and conn.sid not in world.closed


async def test_rehome_retries_while_the_lost_controller_is_still_scheduled_then_drops(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session = await _partitioned(world)
    before = len(_schedules(world))
    # the manager has not repealed the lost controller's rooms: it schedules the room there again
    await world.logins.rehome(session.room, [session], CONTROLLER_ID, asyncio.Semaphore(8))
    assert _schedules(world, before) == [_room_schedule()] * 3  # failover_attempts
    assert world.sleeps.asked == [0.75, 0.75]  # failover_interval between them
    assert world.to(CONTROLLER_ID, "resume") == []
    assert _logged(caplog, "failover_failed") == [(logging.WARNING, _of(session, lost=CONTROLLER_ID, attempts=3))]
    assert _logged(caplog, "drop") == [(logging.INFO, _of(session, reason="controller lost"))]
    assert world.sio.emitted[-1] == ("drop", None, conn.sid) and world.closed == [conn.sid]
    assert world.sessions.get(session.id) is None and conn.state is State.INITIALIZED


async def test_rehome_retries_a_failed_schedule_and_a_failed_reattach(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session, before = await _orphaned(world)
    world.harness.cluster_spy.refuse_next("schedule", "no_worker_available", "none yet")
    resumes = 0

    def refuse_the_first_resume() -> None:
        nonlocal resumes
        resumes += 1
        if resumes == 1:
            world.harness.spy.refuse_next("resume", "busy", "try later")

    world.sleeps.then.append(refuse_the_first_resume)  # after the first wait: the schedule works now
    await world.logins.rehome(session.room, [session], LOST, asyncio.Semaphore(8))
    assert _schedules(world, before) == [_room_schedule()] * 3 and world.sleeps.asked == [0.75, 0.75]
    assert len(world.to(CONTROLLER_ID, "resume")) == 2
    assert _logged(caplog, "failover_schedule_failed") == [
        (logging.INFO, {"worker": PORTAL, "room": session.room, "attempt": 1, "error": "unavailable"})]
    assert _logged(caplog, "reattach_failed") == [(logging.WARNING, _of(session, error="busy"))]
    assert _logged(caplog, "failed_over") == [(logging.INFO, _of(session, lost=LOST, controller=CONTROLLER_ID,
                                                                 attempt=3))]
    assert world.sessions.get(session.id) is session and session.live and world.closed == []


async def test_rehome_retries_a_reattach_that_raised_and_still_moves_the_rest_of_the_room(
        world: _World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session, before = await _orphaned(world)
    other = Session(id="other", room=session.room, portal_log=EventLog(), controller=LOST, sid="s-other")
    world.sessions.add(other)
    other.phase = Phase.LIVE
    reattach = world.logins.reattach
    calls: list[str] = []

    async def raising_once(moving: Session) -> bool:
        calls.append(moving.id)
        if moving is session and calls.count(session.id) == 1:
            raise ValueError("a malformed resume answer")
        if moving is other:
            return True
        return await reattach(moving)

    monkeypatch.setattr(world.logins, "reattach", raising_once)
    await world.logins.rehome(session.room, [session, other], LOST, asyncio.Semaphore(8))
    assert sorted(calls) == sorted([session.id, other.id, session.id]) and world.sleeps.asked == [0.75]
    assert session.controller == CONTROLLER_ID and other.controller == CONTROLLER_ID
    assert _logged(caplog, "reattach_error") == [
        (logging.WARNING, _of(session, controller=CONTROLLER_ID, error="ValueError('a malformed resume answer')"))]
    assert _logged(caplog, "failover_failed") == [] and world.sessions.get(session.id) is session and session.live


async def test_rehome_leaves_alone_a_session_not_registered_or_not_live(world: _World) -> None:
    conn, session, before = await _orphaned(world)
    pending = Session(id="pending", room="room-1", portal_log=EventLog(), controller=LOST, sid="s")
    world.sessions.add(pending)  # registered, a login still in flight
    await world.logins.rehome(pending.room, [pending], LOST, asyncio.Semaphore(8))
    stale = Session(id=session.id, room="room-1", portal_log=EventLog(), controller=LOST, sid=conn.sid,
                    phase=Phase.LIVE)  # live, but not the registered one
    await world.logins.rehome(stale.room, [stale], LOST, asyncio.Semaphore(8))
    assert _schedules(world, before) == [] and world.to(CONTROLLER_ID, "resume") == []
    assert world.sio.emitted == [("text", {"n": 0}, conn.sid)] and world.closed == []
    assert pending.phase is Phase.PENDING and stale.phase is Phase.LIVE


async def test_rehome_of_a_session_that_ends_during_the_schedule_stops(world: _World) -> None:
    conn, session, before = await _orphaned(world)
    stalled = world.harness.cluster_spy.stall_calls("schedule")
    moving = asyncio.ensure_future(world.logins.rehome(session.room, [session], LOST, asyncio.Semaphore(8)))
    await wait_until(lambda: len(_schedules(world, before)) == 1, what="the schedule")
    world.sessions.remove(session)  # what the socket's end does to it
    stalled.set()
    await moving
    assert len(_schedules(world, before)) == 1 and world.sleeps.asked == []
    assert world.to(CONTROLLER_ID, "resume") == [] and world.closed == []


async def test_rehome_leaves_alone_a_session_no_longer_live_when_its_turn_comes(world: _World) -> None:
    conn, session, before = await _orphaned(world)
    session.start_move()
    slots = asyncio.Semaphore(0)  # every re-attach slot taken by other rooms' sessions
    moving = asyncio.ensure_future(world.logins.rehome(session.room, [session], LOST, slots))
    await wait_until(lambda: len(_schedules(world, before)) == 1, what="the schedule")
    session.phase = Phase.PENDING  # still registered, but a relogin of it runs now
    slots.release()
    await moving
    assert session.controller == LOST and session.moving is None  # its requests go on, to whatever the relogin says
    assert world.to(CONTROLLER_ID, "resume") == [] and world.sleeps.asked == []


async def test_rehome_of_a_session_that_ends_while_its_reattach_waits_for_it_stops(world: _World) -> None:
    conn, session, before = await _orphaned(world)
    async with session.lock:  # a refresh of its ticket in flight
        moving = asyncio.ensure_future(world.logins.rehome(session.room, [session], LOST, asyncio.Semaphore(8)))
        await wait_until(lambda: session.controller == CONTROLLER_ID, what="the re-attach waiting for the session")
        world.sessions.remove(session)  # what the socket's end does to it
    await moving
    assert len(_schedules(world, before)) == 1 and world.sleeps.asked == []  # not tried again
    assert world.to(CONTROLLER_ID, "resume") == [] and world.closed == []


async def test_rehome_of_a_participant_the_new_controller_does_not_know_drops_it_once(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    conn, session, before = await _orphaned(world)
    world.harness.spy.refuse_next("resume", "unknown_participant", "no journal")
    await world.logins.rehome(session.room, [session], LOST, asyncio.Semaphore(8))
    assert len(_schedules(world, before)) == 1 and world.sleeps.asked == []
    assert _logged(caplog, "drop") == [(logging.INFO, _of(session, reason="session lost: unknown_participant"))]
    assert world.closed == [conn.sid] and _logged(caplog, "failover_failed") == []


async def test_rehome_whose_session_is_replaced_during_a_failed_reattach_stops(world: _World) -> None:
    conn, session, before = await _orphaned(world)
    stall = world.harness.spy.stall_calls("resume")
    world.harness.spy.refuse_next("resume", "busy", "try later")
    moving = asyncio.ensure_future(world.logins.rehome(session.room, [session], LOST, asyncio.Semaphore(8)))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    world.sessions.remove(session)
    world.sessions.add(Session(id=session.id, room="room-1", portal_log=EventLog(), controller=CONTROLLER_ID))
    stall.set()
    await moving
    assert len(_schedules(world, before)) == 1 and world.sleeps.asked == [] and world.closed == []


async def test_rehome_whose_socket_closes_during_the_reattach_holds_it_and_stops(world: _World) -> None:
    conn, session, before = await _orphaned(world)
    gate = world.harness.spy.hold_replies("resume")
    moving = asyncio.ensure_future(world.logins.rehome(session.room, [session], LOST, asyncio.Semaphore(8)))
    await wait_until(lambda: world.harness.spy.called("resume"), what="the resume")
    world.sessions.remove(session)  # what the socket's end does to it (phase ENDED)
    gate.set()
    await moving
    await wait_until(lambda: world.harness.held(session.id), what="held again, at the new controller")
    assert len(_schedules(world, before)) == 1 and world.sleeps.asked == []


async def test_rehome_that_gives_up_spares_a_session_being_reattached(world: _World) -> None:
    world.logins.settings = msgspec.structs.replace(SETTINGS, failover_attempts=1)
    conn, session = await _partitioned(world)
    before = len(_schedules(world))
    stalled = world.harness.cluster_spy.stall_calls("schedule")
    moving = asyncio.ensure_future(world.logins.rehome(session.room, [session], CONTROLLER_ID, asyncio.Semaphore(8)))
    await wait_until(lambda: len(_schedules(world, before)) == 1, what="the schedule")
    gate = world.harness.spy.hold_replies("resume")
    reattaching = asyncio.ensure_future(world.logins.reattach(session))  # the portal back from a partition
    await wait_until(lambda: world.harness.spy.called("resume"), what="the re-attach's resume")
    stalled.set()
    await moving  # its one attempt found the lost controller again, but the session is being re-attached
    assert world.closed == [] and ("drop", None, conn.sid) not in world.sio.emitted
    gate.set()
    await reattaching
    assert world.sessions.get(session.id) is session and session.live


# -- answers without their optional keys -----------------------------------------------------------


async def test_a_join_answer_without_permission_or_room_gets_their_defaults(world: _World) -> None:
    world.harness.spy.rewrite_reply("join", lambda _: {})
    _, _, answer = await world.login()
    assert isinstance(answer, tuple)
    assert (answer[1]["permission"], answer[1]["room"]) == ({}, {"id": "room-1"})


async def test_a_resume_answer_without_epoch_or_messages_gets_their_defaults(world: _World) -> None:
    participant, ticket_text, _ = await _held(world, extension=True)
    world.harness.notify(participant, "text", {"n": 1})
    world.harness.spy.rewrite_reply("resume", lambda _: {})
    answer = await world.logins.relogin(world.connection(), {"ticket": ticket_text, "lastSeq": 0})
    assert isinstance(answer, tuple) and answer[1]["messages"] == [] and answer[1]["lastSeq"] is None
    session = world.sessions.get(participant)
    assert session is not None and (session.epoch, session.last_seq) == (0, 0)


async def test_a_reattach_answer_without_epoch_or_messages_keeps_the_sessions_own(world: _World) -> None:
    conn, session = await _partitioned(world)
    session.epoch = 5
    world.harness.spy.rewrite_reply("resume", lambda _: {})
    await world.logins.reattach(session)
    assert (session.epoch, session.phase, session.last_seq) == (5, Phase.LIVE, 1)
    assert world.sio.emitted == [("text", {"n": 0}, conn.sid)]


async def test_a_relogin_sends_the_old_sockets_pending_acks_before_its_resume(world: _World) -> None:
    old_conn, _, answer = await world.login()
    assert isinstance(answer, tuple)
    old = old_conn.session
    other, _, _ = await world.login()
    assert old is not None and other.session is not None
    world.logins.acks.note(old, 2)
    world.logins.acks.note(other.session, 4)  # another participant's: not yet
    await world.logins.relogin(world.connection(), answer[1]["reconnectionTicket"])
    sent = [(s.method, s.args) for s in world.transport.sent
            if s.target == CONTROLLER_ID and s.method in ("ack_many", "resume")]
    assert [method for method, _ in sent] == ["ack_many", "resume"]
    assert sent[0][1] == {"acks": {old.id: 2}, "portal": PORTAL, "unconfirmed": [old.id]}


async def test_the_tasks_after_a_login_a_relogin_and_a_hold_are_named_for_the_participant(world: _World) -> None:
    conn = world.connection()
    token = await world.token()
    answer = await world.logins.login(conn, {"token": world.encoded(token), "protocol": "1.2"})
    assert isinstance(answer, tuple)
    participant = answer[1]["id"]
    assert f"login:{participant}" in {task.get_name() for task in asyncio.all_tasks()}
    session = conn.session
    assert session is not None
    await wait_until(lambda: session.phase is Phase.LIVE, what="the session live")
    world.logins.socket_lost(conn)
    assert world.sessions.holds[participant].get_name() == f"hold:{participant}"
    await wait_until(lambda: participant not in world.sessions.holds, what="the hold done")
    await world.logins.relogin(world.connection(), answer[1]["reconnectionTicket"])
    assert f"relogin:{participant}" in {task.get_name() for task in asyncio.all_tasks()}


async def test_a_hold_sends_only_its_participants_acks_first(world: _World) -> None:
    conn, _, _ = await world.login()
    other, _, _ = await world.login()
    session = conn.session
    assert session is not None and other.session is not None
    world.logins.acks.note(session, 2)
    world.logins.acks.note(other.session, 4)  # another participant's: not yet
    world.logins.socket_lost(conn)
    await wait_until(lambda: world.to(CONTROLLER_ID, "hold"), what="the hold")
    sent = [(s.method, s.args) for s in world.transport.sent
            if s.target == CONTROLLER_ID and s.method in ("ack_many", "hold")]
    assert sent == [("ack_many", {"acks": {session.id: 2}, "portal": PORTAL, "unconfirmed": [session.id]}),
                    ("hold", {"participant": session.id, "portal": PORTAL})]


async def test_a_login_stops_the_sockets_idle_timer(world: _World) -> None:
    conn = world.connection()
    fired: list[str] = []
    conn.idle_timer = asyncio.get_running_loop().call_later(3600, fired.append, "idle")
    timer = conn.idle_timer
    await world.login(conn)
    assert conn.idle_timer is None and timer.cancelled()


@pytest.mark.parametrize("code", ["not_ready", "no_worker_available"])
async def test_a_login_retries_a_cluster_that_is_not_ready_yet(world: _World, code: str) -> None:
    token = await world.token()
    world.harness.cluster_spy.refuse_next("schedule", code, "not yet")
    answer = await world.logins.login(world.connection(), {"token": world.encoded(token), "protocol": "1.2"})
    assert isinstance(answer, tuple) and answer[0] == "ok"
    assert len(world.to(CLUSTER, "schedule")) == 2 and world.sleeps.asked == [0.25]


async def test_a_relogin_does_not_retry_a_cluster_that_is_not_ready(world: _World) -> None:
    _, ticket_text, _ = await _held(world)
    world.harness.cluster_spy.refuse_next("get_scheduled", "not_ready", "not yet")
    await _refused(world.logins.relogin(world.connection(), ticket_text), "service unavailable", "unavailable")
    assert len(world.to(CLUSTER, "get_scheduled")) == 1 and world.sleeps.asked == []


async def test_a_lost_socket_stops_its_idle_timer(world: _World) -> None:
    conn = world.connection()
    fired: list[str] = []
    timer = conn.idle_timer = asyncio.get_running_loop().call_later(3600, fired.append, "idle")
    world.logins.socket_lost(conn)
    assert conn.idle_timer is None and timer.cancelled()


@pytest.mark.parametrize("structured", [False, True])
async def test_requests_held_before_a_relogin_run_after_it_in_its_task(world: _World, structured: bool) -> None:
    participant, ticket_text, _ = await _held(world, extension=structured)
    conn = world.connection()
    ran: list[tuple[str, Any]] = []

    async def action(on: Connection, payload: Any) -> Ack:
        assert on.session is not None
        ran.append((on.session.id, payload))
        return "ok"

    early = conn.hold_early(action, {"n": 1})
    await world.logins.relogin(conn, {"ticket": ticket_text} if structured else ticket_text)
    assert f"relogin:{participant}" in {task.get_name() for task in asyncio.all_tasks()}
    await wait_until(early.reply.done, what="the held request answered")
    assert early.reply.result() == "ok"
    assert ran == [(participant, {"n": 1})]


async def test_a_login_retries_a_claim_the_cluster_cannot_serve_yet(world: _World) -> None:
    token = await world.token()
    world.harness.cluster_spy.refuse_next("claim", "not_ready", "not yet")
    answer = await world.logins.login(world.connection(), {"token": world.encoded(token), "protocol": "1.2"})
    assert isinstance(answer, tuple) and answer[0] == "ok"
    assert len(world.to(CLUSTER, "claim")) == 2 and world.sleeps.asked == [0.25]


async def test_a_token_task_ends_once_only(world: _World) -> None:
    conn, token, _ = await world.login()
    session = conn.session
    assert session is not None
    world.logins.socket_lost(conn)
    await wait_until(lambda: world.to(CLUSTER, "unschedule"), what="the token's task ended")
    await wait_until(lambda: session.id not in world.sessions.holds, what="the hold done")
    await world.logins.drop(session, "again")  # forgotten a second time: its task is not ended again
    await world.logins.background.stop(grace=10)  # returns once what it started has finished
    assert world.to(CLUSTER, "unschedule") == [
        Sent("cast", CLUSTER, "unschedule", {"worker_id": PORTAL, "task": token.code})]
