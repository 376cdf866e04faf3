"""A ``text`` relayed over the in-process transport without a coroutine of the portal waiting for the
controller (:meth:`portal.relay.Relay.handle_then`, :meth:`rpc.local.LocalTransport.call_then`), from
a Socket.IO client to the real controller with a journal whose writes wait for the test: the
answer once the record is durable, a redirect when the controller is lost meanwhile, an ack whose
write suspends, unexpected failures, a call that cannot be made, and the call's deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from conference_controller import machine
from journal.memory import MemoryJournal
from portal import Portal
from rpc import LocalTransport
from tests.support.waiting import wait_until

from .harness import CONTROLLER_ID, Client, Harness


class GatedJournal(MemoryJournal):
    """A memory journal whose appends wait for ``gate`` (a slow disk), or fail with ``failure``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.failure: Exception | None = None

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return await super().append(room, epoch, body)


@pytest_asyncio.fixture
async def journal() -> AsyncIterator[GatedJournal]:
    made = GatedJournal()
    await made.open()
    yield made
    await made.close()


async def _pair(harness: Harness, journal: GatedJournal, **settings: Any) -> tuple[Portal, Client, Client, str]:
    await harness.start_controller(journal=journal)
    portal = await harness.portal(**settings)
    sender, _ = await harness.joined(portal, user="sender")
    receiver, joined = await harness.joined(portal, user="receiver")
    return portal, sender, receiver, str(joined["id"])


def _counted(portal: Portal, result: str) -> float:
    return portal.metrics.registry.get_sample_value(
        "switchboard_portal_requests_total", {"event": "text", "result": result}) or 0.0


def _handler_tasks() -> list[asyncio.Task[Any]]:
    """python-socketio's (or the portal's) tasks running an event's handler."""
    return [task for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "").endswith("_handle_event_internal")]


def _in_flight(portal: Portal) -> int:
    return sum(len(calls) for calls in portal.relay._calls.values())


def _waiting(transport: Any) -> int:
    assert isinstance(transport, LocalTransport)
    return sum(len(deadline.calls) for deadline in transport._open_deadlines.values())


async def test_a_text_waiting_for_its_record_keeps_no_coroutine_waiting_and_is_answered_once_durable(
        harness: Harness, journal: GatedJournal) -> None:
    portal, sender, receiver, to = await _pair(harness, journal)
    journal.gate.clear()
    ack = asyncio.create_task(sender.call("text", {"to": to, "message": "held", "requestId": "t-1"}))
    await wait_until(lambda: harness.spy.called("text"), what="the text at the controller")
    await asyncio.sleep(0.05)  # a chance to (wrongly) answer early
    assert not ack.done() and receiver.texts() == []
    assert _handler_tasks() == []  # no coroutine of the portal waits for the controller
    controller = harness.real.transport
    assert isinstance(controller, LocalTransport) and not controller._chained and not controller._parked
    assert _in_flight(portal) == 1 and _waiting(portal.transport) == 1
    journal.gate.set()
    assert await ack == "ok"
    await wait_until(lambda: receiver.texts() == ["held"], what="the text at the receiver")
    assert _in_flight(portal) == 0 and _waiting(portal.transport) == 0
    assert _counted(portal, "ok") == 1
    assert await sender.call("text", {"to": to, "message": "held", "requestId": "t-1"}) == "ok"  # deduped
    assert await harness.settled(receiver, to) == ["held"]


async def test_a_continued_text_whose_controller_is_lost_meanwhile_is_made_again_and_answered_once(
        harness: Harness, journal: GatedJournal, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    portal, sender, receiver, to = await _pair(harness, journal)
    held = harness.spy.hold_replies("text")  # served, its answer held back: the call is in flight
    ack = asyncio.create_task(sender.call("text", {"to": to, "message": "moved", "requestId": "t-2"}))
    await wait_until(lambda: harness.spy.called("text"), what="the text at the controller")
    await asyncio.sleep(0.01)
    assert _handler_tasks() == [] and _in_flight(portal) == 1  # on the continuation path
    controller = harness.real.transport
    assert isinstance(controller, LocalTransport) and len(controller._chained) == 1  # resumed from a callback
    harness.spy.stop_holding("text")
    caplog.set_level(logging.INFO, logger="switchboard.portal")
    # The controller is lost (as the manager's exit.quit tells it): its sessions move to the room's
    # next controller (the harness has one: the same, as a controller restarted under its id) and
    # the text is made again there.
    rehome = portal.logins.rehome

    async def to_the_same(room: str, sessions: Any, lost: str, slots: Any, *, to: str | None = None) -> None:
        await rehome(room, sessions, lost, slots, to=CONTROLLER_ID)

    monkeypatch.setattr(portal.logins, "rehome", to_the_same)
    await portal._on_fault("exit.quit", {"purpose": "conference", "id": CONTROLLER_ID, "type": "worker"})
    assert any(r.getMessage().startswith("controller_lost") and "requests_redirected=1" in r.getMessage()
               for r in caplog.records)
    assert await ack == "ok"  # the second call's answer (the same request id: the first one's)
    assert any(r.getMessage().startswith("request_redirected") for r in caplog.records)
    assert [args["request_id"] for args in harness.spy.called("text")] == ["t-2", "t-2"]
    held.set()  # the first call's late answer: dropped
    await wait_until(lambda: not controller._chained, what="the first call's end")
    await asyncio.sleep(0.05)
    assert _counted(portal, "ok") == 1 and _in_flight(portal) == 0 and not portal.relay._redirects
    assert _waiting(portal.transport) == 0
    assert await harness.settled(receiver, to) == ["moved"]  # applied once


async def test_a_continued_ack_whose_write_suspends_goes_on_and_arrives(harness: Harness, journal: GatedJournal) -> None:
    portal, sender, receiver, to = await _pair(harness, journal)
    sio = portal.server.sio
    eio_sid = sio.manager.eio_sid_from_sid(sender.sio.get_sid("/"), "/")
    socket = sio.eio.sockets[eio_sid]
    write = socket._write
    assert write is not None, "the sender's websocket writes in place"
    drained = asyncio.Event()

    async def slow(data: Any) -> None:  # a websocket whose buffer is full: the write waits for the drain
        await drained.wait()
        await write(data)

    socket._write = slow
    ack = asyncio.create_task(sender.call("text", {"to": to, "message": "slow ack", "requestId": "t-3"}))
    await wait_until(lambda: sio._sending, what="the ack's write suspended, going on as a task")
    await asyncio.sleep(0.05)
    assert not ack.done()
    drained.set()
    assert await ack == "ok"
    await wait_until(lambda: not sio._sending, what="the write's task ended")
    assert _counted(portal, "ok") == 1
    assert await harness.settled(receiver, to) == ["slow ack"]


async def test_unexpected_failures_of_a_continued_text_are_answered_internal_and_logged(
        harness: Harness, journal: GatedJournal, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    portal, sender, receiver, to = await _pair(harness, journal)
    # The controller answers what is no text's answer: the portal's conversion fails.
    harness.spy.rewrite_reply("text", lambda _: {"not": "a string"})
    journal.gate.clear()
    ack = asyncio.create_task(sender.call("text", {"to": to, "message": "odd answer"}))
    await wait_until(lambda: harness.spy.called("text"), what="the text at the controller")
    journal.gate.set()
    assert await ack == ("error", "internal error")
    failed = [r for r in caplog.records if r.name == "switchboard.portal" and r.getMessage().startswith("request_failed")]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR and failed[0].exc_info is not None
    assert _counted(portal, "internal") == 1
    # The controller's handler raises what nobody expected: ``internal`` from the controller.
    caplog.clear()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the controller")

    monkeypatch.setattr(machine, "decide_text", broken)
    status, reason = await sender.call("text", {"to": to, "message": "bug"})
    assert status == "error" and "a bug" not in reason
    assert any(r.getMessage().startswith("rpc_handler_failed") and r.exc_info for r in caplog.records)
    monkeypatch.undo()
    assert _in_flight(portal) == 0 and _waiting(portal.transport) == 0
    assert portal.server.connections[sender.sio.get_sid("/")].limits.pending == 0
    assert await sender.call("text", {"to": to, "message": "fine"}) == "ok"
    assert await harness.settled(receiver, to) == ["odd answer", "fine"]  # applied; only its answer was odd


async def test_a_continued_call_that_cannot_be_made_is_answered_internal_and_leaves_nothing_behind(
        harness: Harness, journal: GatedJournal, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    portal, sender, receiver, to = await _pair(harness, journal)
    transport = portal.transport
    assert isinstance(transport, LocalTransport)

    def unsendable(*args: Any, **kwargs: Any) -> None:  # as arguments that cannot be encoded
        raise TypeError("cannot be sent")

    monkeypatch.setattr(transport, "call_then", unsendable)
    assert await sender.call("text", {"to": to, "message": "lost"}) == ("error", "internal error")
    assert portal.relay._calls.get(CONTROLLER_ID, set()) == set()  # no entry left in flight
    assert portal.server.connections[sender.sio.get_sid("/")].limits.pending == 0
    assert any(r.getMessage().startswith("request_failed") and r.exc_info for r in caplog.records)
    assert harness.spy.called("text") == []
    monkeypatch.undo()
    assert await sender.call("text", {"to": to, "message": "sent"}) == "ok"
    assert await harness.settled(receiver, to) == ["sent"]


async def test_a_continued_text_whose_record_does_not_come_in_time_is_answered_timeout_once(
        harness: Harness, journal: GatedJournal) -> None:
    portal, sender, receiver, to = await _pair(harness, journal, text_timeout=0.3)
    journal.gate.clear()
    loop = asyncio.get_running_loop()
    begun = loop.time()
    assert await sender.call("text", {"to": to, "message": "late", "requestId": "t-4"}, timeout=2.0) == \
        ("error", "timeout")
    assert 0.3 <= loop.time() - begun < 1.0
    assert _in_flight(portal) == 0 and _waiting(portal.transport) == 0
    assert portal.server.connections[sender.sio.get_sid("/")].limits.pending == 0
    journal.gate.set()  # written after all: delivered, but the client was answered once
    await wait_until(lambda: receiver.texts() == ["late"], what="the late text delivered")
    await asyncio.sleep(0.05)
    assert _counted(portal, "timeout") == 1 and _counted(portal, "ok") == 0
