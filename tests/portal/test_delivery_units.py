"""``AckBatcher`` and ``SocketDelivery`` alone: exact casts and emits, no socket, no real time.

The batcher casts through a recording transport to fake controllers on the in-process transport and
sleeps through a :class:`SteppedSleep`; ``SocketDelivery`` emits on a fake Socket.IO server that records
every emit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import socketio

from portal.delivery import AckBatcher, SocketDelivery, with_seq
from portal.logs import EventLog
from portal.metrics import PortalMetrics
from portal.session import Notification, Phase, Session
from rpc import LocalBroker, rpc_method
from tests.support.recording import RecordingTransport, Sent
from tests.support.stepped_sleep import SteppedSleep

INTERVAL = 0.25
PORTAL = "portal-1"


class _Controller:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    @rpc_method
    async def ack_many(self, acks: dict[str, int], portal: str, unconfirmed: list[str] | None = None) -> None:
        self.got.append({"acks": acks, "portal": portal, "unconfirmed": unconfirmed})


@dataclass
class _FakeSio:
    """Records every ``emit(event, data, to=…)``."""

    emitted: list[tuple[str, Any, Any]] = field(default_factory=list)

    async def emit(self, event: str, data: Any, to: Any = None) -> None:
        self.emitted.append((event, data, to))


@dataclass
class _World:
    transport: RecordingTransport
    sleeps: SteppedSleep
    acks: AckBatcher
    sio: _FakeSio
    metrics: PortalMetrics
    delivery: SocketDelivery

    def casts(self) -> list[Sent]:
        return list(self.transport.sent)

    def counted(self, event: str) -> float | None:
        return self.metrics.registry.get_sample_value("switchboard_portal_events_relayed_total", {"event": event})


def _ack(controller: str, acks: dict[str, int], unconfirmed: list[str] | None = None) -> Sent:
    args: dict[str, Any] = {"acks": acks, "portal": PORTAL}
    if unconfirmed is not None:
        args["unconfirmed"] = unconfirmed
    return Sent("cast", controller, "ack_many", args)


def _session(pid: str, controller: str = "ctl-a", *, extension: bool = False, sid: str | None = None,
             phase: Phase = Phase.LIVE, last_seq: int = 0) -> Session:
    return Session(id=pid, room="room-1", portal_log=EventLog(), controller=controller, extension=extension,
                   sid=sid if sid is not None else f"sid-{pid}", phase=phase, last_seq=last_seq)


@pytest.fixture
async def world() -> AsyncIterator[_World]:
    broker = LocalBroker(roundtrip=True)
    controllers = broker.transport("controllers")
    await controllers.start()
    await controllers.serve("ctl-a", _Controller())
    await controllers.serve("ctl-b", _Controller())
    inner = broker.transport("portal")
    await inner.start()
    transport = RecordingTransport(inner)
    sleeps = SteppedSleep()
    acks = AckBatcher(transport, INTERVAL, EventLog(portal=PORTAL), PORTAL, sleep=sleeps)
    sio = _FakeSio()
    metrics = PortalMetrics()
    delivery = SocketDelivery(cast(socketio.AsyncServer, sio), acks, metrics)
    yield _World(transport, sleeps, acks, sio, metrics, delivery)
    await inner.close()
    await controllers.close()


# -- with_seq ----------------------------------------------------------------------------------------


def test_with_seq_adds_seq_to_an_object_and_wraps_anything_else() -> None:
    assert with_seq({"a": 1}, 4) == {"a": 1, "seq": 4}
    assert with_seq({"a": 1, "seq": 1}, 4) == {"a": 1, "seq": 4}
    assert with_seq([1, 2], 4) == {"data": [1, 2], "seq": 4}
    assert with_seq("text", 0) == {"data": "text", "seq": 0}
    assert with_seq({"a": 1}, None) == {"a": 1}
    assert with_seq("text", None) == "text"


# -- AckBatcher ----------------------------------------------------------------------------------------


async def test_one_cast_per_controller_with_the_highest_seq_and_the_unconfirmed_plain_clients(
        world: _World) -> None:
    world.acks.note(_session("p1"), 5)
    world.acks.note(_session("p1"), 7)
    world.acks.note(_session("p1"), 6)  # lower: kept at 7
    world.acks.note(_session("p2", extension=True), 3)
    world.acks.note(_session("p3", "ctl-b", extension=True), 9)
    await world.acks.flush()
    assert world.casts() == [
        _ack("ctl-a", {"p1": 7, "p2": 3}, ["p1"]),
        _ack("ctl-b", {"p3": 9}),  # only clients that acked themselves: no "unconfirmed" at all
    ]
    await world.acks.flush()
    assert len(world.casts()) == 2  # nothing pending any more


async def test_an_equal_seq_keeps_the_entry_first_noted(world: _World) -> None:
    world.acks.note(_session("p1"), 5)
    world.acks.note(_session("p1", extension=True), 5)  # same seq: the first (unconfirmed) one stays
    await world.acks.flush()
    assert world.casts() == [_ack("ctl-a", {"p1": 5}, ["p1"])]


async def test_a_participant_that_moved_to_another_controller_is_acked_there_even_with_a_lower_seq(
        world: _World) -> None:
    world.acks.note(_session("p1", "ctl-a"), 8)
    world.acks.note(_session("p1", "ctl-b"), 2)
    world.acks.note(_session("p2", "ctl-a"), 4)
    await world.acks.flush()
    assert world.casts() == [_ack("ctl-b", {"p1": 2}, ["p1"]), _ack("ctl-a", {"p2": 4}, ["p2"])]


async def test_flush_of_one_participant_sends_only_its_ack_and_keeps_the_others(world: _World) -> None:
    world.acks.note(_session("p1"), 5)
    world.acks.note(_session("p2"), 6)
    await world.acks.flush("p1")
    assert world.casts() == [_ack("ctl-a", {"p1": 5}, ["p1"])]
    await world.acks.flush("p1")
    await world.acks.flush("nobody")
    assert len(world.casts()) == 1
    await world.acks.flush()
    assert world.casts()[1:] == [_ack("ctl-a", {"p2": 6}, ["p2"])]


async def test_discard_forgets_what_is_pending_for_one_participant(world: _World) -> None:
    world.acks.note(_session("p1"), 5)
    world.acks.note(_session("p2"), 6)
    world.acks.discard("p1")
    world.acks.discard("nobody")  # nothing pending: no error
    await world.acks.flush()
    assert world.casts() == [_ack("ctl-a", {"p2": 6}, ["p2"])]


async def test_acks_that_cannot_be_sent_are_logged_and_the_other_controllers_still_get_theirs(
        world: _World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.portal")
    world.acks.note(_session("p1", "ctl-gone"), 1)
    world.acks.note(_session("p2", "ctl-gone"), 2)
    world.acks.note(_session("p3", "ctl-a"), 3)
    await world.acks.flush()
    assert world.casts() == [_ack("ctl-gone", {"p1": 1, "p2": 2}, ["p1", "p2"]), _ack("ctl-a", {"p3": 3}, ["p3"])]
    records = [r for r in caplog.records if r.name == "switchboard.portal"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "acks_not_sent portal=portal-1 count=2 controller=ctl-gone error=unavailable")
    ]
    assert getattr(records[0], "event") == "acks_not_sent"


async def test_the_loop_sends_the_pending_acks_every_interval(world: _World) -> None:
    world.acks.start()
    assert "portal-acks:portal-1" in [task.get_name() for task in asyncio.all_tasks()]
    await world.sleeps.asleep(INTERVAL)
    world.acks.note(_session("p1"), 5)
    assert world.casts() == []
    assert await world.sleeps.step(INTERVAL) == INTERVAL
    assert world.casts() == [_ack("ctl-a", {"p1": 5}, ["p1"])]
    await world.sleeps.step(INTERVAL)  # nothing pending: nothing sent
    world.acks.note(_session("p1"), 6)
    await world.sleeps.step(INTERVAL)
    assert world.casts()[1:] == [_ack("ctl-a", {"p1": 6}, ["p1"])]
    assert world.sleeps.asked == [INTERVAL] * 4
    await world.acks.stop()


async def test_stop_ends_the_loop_and_sends_what_is_pending(world: _World) -> None:
    world.acks.start()
    await world.sleeps.asleep(INTERVAL)
    task = next(t for t in asyncio.all_tasks() if t.get_name() == "portal-acks:portal-1")
    world.acks.note(_session("p1"), 5)
    await world.acks.stop()
    assert task.cancelled()
    assert world.sleeps.sleeping() == []
    assert world.casts() == [_ack("ctl-a", {"p1": 5}, ["p1"])]
    world.acks.note(_session("p1"), 6)
    await world.acks.stop()  # a second stop: no task to end, the pending ack still goes
    assert world.casts()[1:] == [_ack("ctl-a", {"p1": 6}, ["p1"])]


async def test_stop_without_start_sends_what_is_pending(world: _World) -> None:
    world.acks.note(_session("p1"), 5)
    await world.acks.stop()
    assert world.casts() == [_ack("ctl-a", {"p1": 5}, ["p1"])]


# -- SocketDelivery ------------------------------------------------------------------------------------


async def test_a_live_plain_client_gets_the_payload_as_is_and_the_portal_acks_it(world: _World) -> None:
    session = _session("p1", last_seq=2)
    assert await world.delivery.deliver(session, Notification("chat", {"text": "hi"}, 3)) is True
    assert world.sio.emitted == [("chat", {"text": "hi"}, "sid-p1")]
    assert session.last_seq == 3
    assert world.counted("chat") == 1.0
    await world.acks.flush()
    assert world.casts() == [_ack("ctl-a", {"p1": 3}, ["p1"])]


async def test_a_live_extension_client_gets_the_seq_and_acks_itself(world: _World) -> None:
    session = _session("p1", extension=True)
    assert await world.delivery.deliver(session, Notification("chat", "hi", 1)) is True
    assert await world.delivery.deliver(session, Notification("stream", {"id": "s"}, 2)) is True
    assert world.sio.emitted == [
        ("chat", {"data": "hi", "seq": 1}, "sid-p1"),
        ("stream", {"id": "s", "seq": 2}, "sid-p1"),
    ]
    assert session.last_seq == 2
    assert (world.counted("chat"), world.counted("stream")) == (1.0, 1.0)
    await world.acks.flush()
    assert world.casts() == []


async def test_a_notification_without_seq_is_emitted_and_neither_counted_in_last_seq_nor_acked(
        world: _World) -> None:
    session = _session("p1", last_seq=4)
    assert await world.delivery.deliver(session, Notification("ping", {"n": 1})) is True
    assert await world.delivery.deliver(session, Notification("ping", {"n": 2})) is True
    assert world.sio.emitted == [("ping", {"n": 1}, "sid-p1"), ("ping", {"n": 2}, "sid-p1")]
    assert session.last_seq == 4
    assert world.counted("ping") == 2.0
    await world.acks.flush()
    assert world.casts() == []


async def test_a_notification_already_emitted_is_not_emitted_again(world: _World) -> None:
    session = _session("p1", last_seq=5)
    assert await world.delivery.deliver(session, Notification("chat", "a", 5)) is True
    assert await world.delivery.deliver(session, Notification("chat", "b", 4)) is True
    assert world.sio.emitted == []
    assert world.counted("chat") is None


async def test_a_pending_session_buffers_and_a_session_without_socket_is_undelivered(world: _World) -> None:
    pending = _session("p1", phase=Phase.PENDING)
    note = Notification("chat", "a", 1)
    assert await world.delivery.deliver(pending, note) is True
    assert pending.buffer == [note]
    ended = _session("p2", phase=Phase.ENDED)
    assert await world.delivery.deliver(ended, Notification("chat", "b", 1)) is False
    socketless = _session("p3")
    socketless.sid = None
    assert await world.delivery.deliver(socketless, Notification("chat", "c", 1)) is False
    assert world.sio.emitted == []
    assert (pending.last_seq, ended.last_seq, socketless.last_seq) == (0, 0, 0)


async def test_deliver_many_emits_once_to_the_plain_clients_and_one_by_one_to_the_others(
        world: _World) -> None:
    ahead = _session("p0", last_seq=9)  # already has seq 7: skipped, and the loop goes on
    plain1 = _session("p1", last_seq=6)
    ext = _session("p2", extension=True)
    pending = _session("p3", phase=Phase.PENDING)
    ended = _session("p4", phase=Phase.ENDED)
    plain2 = _session("p5", "ctl-b")
    ended2 = _session("p6", extension=True, phase=Phase.ENDED)
    undelivered = await world.delivery.deliver_many(
        [(ahead, 7), (plain1, 7), (ext, 3), (pending, 2), (ended, 7), (plain2, None), (ended2, 1)],
        "chat", {"text": "hi"})
    assert undelivered == ["p4", "p6"]
    assert world.sio.emitted == [
        ("chat", {"text": "hi", "seq": 3}, "sid-p2"),
        ("chat", {"text": "hi"}, ["sid-p1", "sid-p5"]),
    ]
    assert pending.buffer == [Notification("chat", {"text": "hi"}, 2)]
    assert (ahead.last_seq, plain1.last_seq, ext.last_seq, plain2.last_seq) == (9, 7, 3, 0)
    assert world.counted("chat") == 3.0
    await world.acks.flush()
    assert world.casts() == [_ack("ctl-a", {"p1": 7}, ["p1"])]


async def test_deliver_many_with_no_plain_client_emits_no_room_event(world: _World) -> None:
    ahead = _session("p0", last_seq=3)
    assert await world.delivery.deliver_many([(ahead, 3)], "chat", "x") == []
    assert world.sio.emitted == []


async def test_flush_emits_the_replay_then_the_buffer_in_order_without_duplicates_and_goes_live(
        world: _World) -> None:
    session = _session("p1", extension=True, phase=Phase.PENDING, last_seq=1)
    for note in (Notification("chat", "c", 3), Notification("chat", "b", 2), Notification("chat", "d", 4),
                 Notification("ping", "e")):
        await world.delivery.deliver(session, note)
    replay = [Notification("chat", "a", 1), Notification("chat", "b", 2), Notification("hello", "n")]
    await world.delivery.flush(session, replay)
    assert world.sio.emitted == [
        ("chat", {"data": "b", "seq": 2}, "sid-p1"),
        ("hello", "n", "sid-p1"),
        ("chat", {"data": "c", "seq": 3}, "sid-p1"),
        ("chat", {"data": "d", "seq": 4}, "sid-p1"),
        ("ping", "e", "sid-p1"),
    ]
    assert session.phase is Phase.LIVE
    assert session.buffer is None
    assert session.last_seq == 4


async def test_flush_of_a_session_that_ended_meanwhile_emits_only_the_replay_and_stays_ended(
        world: _World) -> None:
    session = _session("p1", phase=Phase.PENDING)
    await world.delivery.deliver(session, Notification("chat", "b", 2))
    session.phase = Phase.ENDED
    await world.delivery.flush(session, [Notification("chat", "a", 1)])
    assert world.sio.emitted == [("chat", "a", "sid-p1")]
    assert session.phase is Phase.ENDED
    assert session.buffer == [Notification("chat", "b", 2)]


async def test_nothing_is_emitted_to_a_session_without_socket(world: _World) -> None:
    session = _session("p1", phase=Phase.PENDING)
    session.sid = None
    await world.delivery.deliver(session, Notification("chat", "b", 2))
    await world.delivery.flush(session, [Notification("chat", "a", 1)])
    assert world.sio.emitted == []
    assert session.last_seq == 0
    assert world.counted("chat") is None
    assert session.phase is Phase.LIVE
