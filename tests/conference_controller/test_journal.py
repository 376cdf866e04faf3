"""The controller with a journal: nothing is heard outside before it is durable, a room is rebuilt
by another controller (or this one, after a lost write) from the journal, and a controller whose
room moved on cannot act for it any more (fenced by epoch)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from conference_controller import machine
from conference_controller.events import decode_events
from conference_controller.ids import ParticipantId
from journal import JournalRecord, JournalUnavailable, Snapshot
from journal.memory import MemoryJournal
from journal.settings import JournalSettings
from journal.sqlite import SqliteJournal
from rpc import RpcRemoteError
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import ADMIN_KEY, Env


class GatedJournal(MemoryJournal):
    """A memory journal whose appends wait for ``gate`` (a slow disk or broker), or fail while
    ``failing`` (a lost write)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False
        self.appends = 0
        self.snapshots = 0

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        self.appends += 1
        await self.gate.wait()
        if self.failing:
            raise JournalUnavailable("the test's journal lost this write")
        return await super().append(room, epoch, body)

    async def save_snapshot(self, room: str, snapshot: Snapshot) -> None:
        await super().save_snapshot(room, snapshot)
        self.snapshots += 1


@pytest_asyncio.fixture
async def journal() -> AsyncIterator[GatedJournal]:
    made = GatedJournal()
    await made.open()
    yield made
    await made.close()


@pytest_asyncio.fixture
async def env(local: TransportFactory, make_env: Any, journal: GatedJournal) -> Env:
    made: Env = await make_env(local, journal=journal, reconnection_timeout=30.0)
    return made


def _texts(env: Env, pid: str, portal: str = "a") -> list[tuple[int, Any]]:
    fake = env.portal_a if portal == "a" else env.portal_b
    return [(seq, data["message"]) for seq, _, data in fake.events(pid, "text")]


async def _room_with_history(env: Env) -> None:
    """p1 (acked up to its 2nd message: "one") and p2 (got "one" as seq 1, then held: "two" waits as
    seq 2), in room-1."""
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.call("text", participant="p1", to="all", message="one", request_id="r1")
    await wait_until(lambda: len(_texts(env, "p2", "b")) == 1)
    await env.ack("p1", 2)
    await wait_until(lambda: env.controller.participant("p1").outbox.acked == 2)
    await env.call("hold", participant="p2", portal=env.portal_b.name)
    await env.call("text", participant="p1", to="all", message="two")
    await wait_until(lambda: _texts(env, "p1") == [(2, "one"), (3, "two")])


async def test_nothing_is_delivered_or_answered_before_the_journal_has_it(env: Env, journal: GatedJournal) -> None:
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await wait_until(lambda: env.portal_a.events("p1"))
    journal.gate.clear()
    sent = asyncio.create_task(env.call("text", participant="p2", to="p1", message="held back"))
    await wait_until(lambda: journal.appends == 3, what="the text's append")
    await asyncio.sleep(0.05)  # a chance to (wrongly) answer or deliver early
    assert not sent.done() and _texts(env, "p1") == []
    journal.gate.set()
    assert await sent == "ok"
    await wait_until(lambda: _texts(env, "p1") == [(2, "held back")])


async def test_another_controller_rebuilds_the_room_and_every_participant_carries_on(
    env: Env, journal: GatedJournal
) -> None:
    await _room_with_history(env)
    before = msgspec.to_builtins(env.controller.room("room-1").state)
    await env.controller.stop()  # it is gone; its room is in the journal only

    other = await env.start_controller("controller-2")
    env.controller = other
    # p2's portal relogs it at the new controller: it gets exactly what it missed while held.
    resumed = await env.call("resume", participant="p2", ticket_id=env.tickets["p2"], new_ticket_id="t-p2",
                             portal=env.portal_b.name, last_seq=1, room="room-1")
    assert [(m["seq"], m["data"]["message"]) for m in resumed["messages"]] == [(2, "two")]
    assert resumed["last_seq"] == 2
    # Everything but the placement came back as it was; everyone is held until re-attached.
    state = other.room("room-1").state
    rebuilt = msgspec.to_builtins(state)
    assert (state.epoch, state.controller) == (2, other.worker_id)
    for key in ("participants", "streams", "subscriptions", "transports", "config"):
        if key != "participants":
            assert rebuilt[key] == before[key]
    assert state.participants["p1"].outbox.acked == 2 and not state.participants["p1"].connected
    assert state.participants["p1"].ticket.current == env.tickets["p1"]
    # The request ids it answered are still known: a repeat is answered, not sent again.
    again = await env.call("resume", participant="p1", ticket_id=env.tickets["p1"], new_ticket_id="t-p1",
                           portal=env.portal_a.name, last_seq=2, room="room-1")
    assert [m["seq"] for m in again["messages"]] == [3]
    assert await env.call("text", participant="p1", to="all", message="one", request_id="r1",
                          portal=env.portal_a.name) == "ok"
    await env.call("text", participant="p1", to="all", message="three", portal=env.portal_a.name)
    await wait_until(lambda: (3, "three") in _texts(env, "p2", "b"))
    assert [m for _, m in _texts(env, "p2", "b")] == ["one", "three"]  # "two" came in the resume


async def test_a_controller_whose_room_moved_on_is_fenced_and_delivers_nothing(
    env: Env, journal: GatedJournal
) -> None:
    await _room_with_history(env)
    stale = env.controller
    other = await env.start_controller("controller-2")
    env.controller = other
    await env.call("resume", participant="p2", ticket_id=env.tickets["p2"], new_ticket_id="t-p2",
                   portal=env.portal_b.name, last_seq=3, room="room-1")
    delivered = len(env.portal_a.delivered_by) + len(env.portal_b.delivered_by)

    # The old controller still has the room in memory (it was only frozen); what it does now is refused.
    env.controller = stale
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="all", message="stale")
    assert (info.value.code, info.value.message) == ("controller_error", "the room moved to another controller")
    assert "room-1" not in stale.rooms and "p1" not in stale.participants  # unloaded
    await asyncio.sleep(0.05)
    assert len(env.portal_a.delivered_by) + len(env.portal_b.delivered_by) == delivered
    assert all(message != "stale" for _, message in _texts(env, "p2", "b"))
    await other.stop()


async def test_a_lost_write_unloads_the_room_and_its_next_use_rebuilds_it(env: Env, journal: GatedJournal) -> None:
    await _room_with_history(env)
    journal.failing = True
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="all", message="lost")
    assert info.value.code == "controller_error"
    assert "room-1" not in env.controller.rooms
    journal.failing = False
    resumed = await env.call("resume", participant="p2", ticket_id=env.tickets["p2"], new_ticket_id="t-p2",
                             portal=env.portal_b.name, last_seq=1, room="room-1")
    assert [(m["seq"], m["data"]["message"]) for m in resumed["messages"]] == [(2, "two")]
    assert env.controller.room("room-1").state.epoch == 2


async def _orphaned(env: Env, journal: GatedJournal) -> None:
    """room-1 with history, then a write lost: the room is unloaded, p1 still connected."""
    await _room_with_history(env)
    journal.failing = True
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="all", message="lost", request_id="r-lost")
    assert info.value.code == "controller_error"
    assert "room-1" not in env.controller.rooms
    # While the journal stays down, a call is refused as "try again", not "who are you".
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="all", message="still lost")
    assert info.value.code == "room_reloading"


async def test_a_room_that_lost_a_write_is_rebuilt_and_its_connected_participants_carry_on(
    local: TransportFactory, make_env: Any, journal: GatedJournal,
) -> None:
    env = await make_env(local, journal=journal, reconnection_timeout=30.0, reload_interval=0.05)
    await _orphaned(env, journal)
    journal.failing = False  # the broker is back: nobody relogs in

    # Rebuilt here, the room holds everyone, and each portal of theirs is told to re-attach its
    # sockets of the room to this same controller, as after a move.
    me = env.controller.worker_id
    await wait_until(lambda: env.portal_a.moved and env.portal_b.moved, what="the portals told")
    assert env.portal_a.moved == env.portal_b.moved == [("room-1", me, me)]
    room = env.controller.room("room-1")
    assert room.state.epoch == 2 and not room.state.participants["p1"].connected
    assert env.controller._orphans == {}
    # Portal A re-attaches p1 (what portal/login.py's rehome does), which then carries on.
    resumed = await env.resume("p1", env.portal_a, last_seq=3)
    assert resumed["messages"] == []
    assert await env.call("text", participant="p1", to="all", message="back", request_id="r-back") == "ok"
    await wait_until(lambda: _texts(env, "p1")[-1:] == [(4, "back")])
    assert [m for _, m in _texts(env, "p1")] == ["one", "two", "back"]  # the lost one was never sent
    assert env.controller.participant_room("p2")[1].connected is False  # still held


async def test_a_room_that_lost_a_write_and_moved_meanwhile_is_not_taken_back(
    local: TransportFactory, make_env: Any, journal: GatedJournal,
) -> None:
    env = await make_env(local, journal=journal, reconnection_timeout=30.0, reload_interval=0.05)
    await _orphaned(env, journal)
    await journal.claim("room-1", 7)  # another controller took the room over meanwhile
    journal.failing = False

    async def unknown() -> bool:
        try:
            await env.call("text", participant="p1", to="all", message="back")
        except RpcRemoteError as exc:
            return exc.code == "unknown_participant"
        raise AssertionError("served by a controller the room moved away from")

    await wait_until(unknown, what="p1 unknown here")
    assert "room-1" not in env.controller.rooms
    epochs = [r.epoch for r in await journal.replay("room-1")]
    assert max(epochs) <= 1  # nothing was written under an epoch of its own after the claim


async def test_a_snapshot_bounds_the_replay_and_rebuilds_the_same_room(env: Env, journal: GatedJournal) -> None:
    await _room_with_history(env)
    room = env.controller.room("room-1")
    await env.controller.snapshot(room)
    snapshot = await journal.snapshot("room-1")
    assert isinstance(snapshot, Snapshot) and await journal.replay("room-1", snapshot.offset) == []
    await env.call("text", participant="p1", to="all", message="after the snapshot")
    records: list[JournalRecord] = await journal.replay("room-1", snapshot.offset)
    assert len(records) == 1
    await env.controller.stop()
    env.controller = await env.start_controller("controller-2")
    resumed = await env.call("resume", participant="p2", ticket_id=env.tickets["p2"], new_ticket_id="t-p2",
                             portal=env.portal_b.name, last_seq=1, room="room-1")
    assert [m["data"]["message"] for m in resumed["messages"]] == ["two", "after the snapshot"]


async def test_a_closed_room_is_forgotten_and_opens_again_with_a_new_history(
    env: Env, journal: GatedJournal
) -> None:
    await env.join("p1")
    await env.call("leave", participant="p1")
    await wait_until(lambda: "room-1" not in env.controller.rooms, timeout=5, what="the grace period")
    await wait_until(lambda: env.cluster.laid_down == ["room-1"], what="the room's task laid down")
    assert await journal.rooms() == []
    with pytest.raises(RpcRemoteError) as info:  # nothing to rebuild: p1 left for good
        await env.call("resume", participant="p1", ticket_id=env.tickets["p1"], new_ticket_id="x",
                       portal=env.portal_a.name, last_seq=0, room="room-1")
    assert info.value.code == "unknown_participant"
    await env.join("p1")
    assert env.controller.room("room-1").state.epoch == 2  # epochs go on across a forget


async def test_a_resume_for_a_room_without_history_creates_nothing(env: Env, journal: GatedJournal) -> None:
    with pytest.raises(RpcRemoteError) as info:
        await env.call("resume", participant="p9", ticket_id="t", new_ticket_id="u", portal=env.portal_a.name,
                       last_seq=0, room="room-1")
    assert info.value.code == "unknown_participant"
    assert env.controller.rooms == {} and await journal.rooms() == []


async def test_a_controller_back_from_being_lost_gives_up_the_rooms_that_moved(env: Env, journal: GatedJournal) -> None:
    await _room_with_history(env)
    await env.join("q1", room="room-2")
    stale = env.controller
    other = await env.start_controller("controller-2")
    env.controller = other
    await env.call("resume", participant="p2", ticket_id=env.tickets["p2"], new_ticket_id="t-p2",
                   portal=env.portal_b.name, last_seq=2, room="room-1")
    picked = len(env.cluster.picked)
    # The manager had forgotten the stale controller; once back, it reports what still lives there.
    await stale._on_loss(["room-1", "room-2"])
    assert env.cluster.picked[picked:] == ["room-2"]  # room-1 moved on: not reported, not kept
    assert "room-1" not in stale.rooms and "room-2" in stale.rooms
    assert other.room("room-1").state.epoch == 2
    await other.stop()


async def test_a_snapshot_is_saved_every_so_many_records_and_a_rebuild_starts_there(
    local: TransportFactory, make_env: Any, journal: GatedJournal
) -> None:
    env: Env = await make_env(local, journal=journal, snapshot_every=4)
    await env.join("p1")  # records: open, join
    await env.join("p2", portal=env.portal_b)  # join (+ its notification)
    assert await journal.snapshot("room-1") is None
    await env.call("text", participant="p1", to="all", message="4th record")
    await wait_until(lambda: env.controller.room("room-1").pending == deque() and journal.snapshots == 1,
                     what="the snapshot of the 4th record")
    snapshot = await journal.snapshot("room-1")
    assert snapshot is not None and snapshot.offset == env.controller.room("room-1").last_offset
    await env.call("text", participant="p1", to="all", message="after it")
    assert len(await journal.replay("room-1", snapshot.offset)) == 1
    before = msgspec.to_builtins(env.controller.room("room-1").state.participants)
    await env.controller.stop()
    env.controller = await env.start_controller("controller-2")
    await env.call("take_over", room="room-1")
    rebuilt = msgspec.to_builtins(env.controller.room("room-1").state.participants)
    for participant in rebuilt.values():  # held until resumed, deadlines restarted: the rest is as it was
        participant.update(connected=True, hold_deadline=None)
    assert rebuilt == before


async def test_migrate_is_refused_without_the_admin_key_and_take_over_without_a_room_name(
    env: Env, journal: GatedJournal
) -> None:
    await _room_with_history(env)
    for key in ("", "wrong-key"):
        with pytest.raises(RpcRemoteError) as info:
            await env.caller.call(env.controller.worker_id, "migrate", {"admin_key": key})
        assert info.value.code == "unauthorized"
    with pytest.raises(RpcRemoteError) as info:
        await env.call("take_over", room=7)
    assert info.value.code == "bad_arguments"
    # nothing moved, nothing claimed: the room is here under its first epoch
    assert env.controller.room("room-1").state.epoch == 1 and not env.controller.finished.is_set()
    assert env.cluster.unscheduled == []


async def test_a_drained_controller_refuses_a_room_handed_to_it(env: Env, journal: GatedJournal) -> None:
    await _room_with_history(env)
    other = await env.start_controller("controller-2")
    try:
        env.cluster.drained.add(other.worker_id)
        assert (await env.caller.call(other.worker_id, "migrate", {"admin_key": ADMIN_KEY}))["rooms"] == 0
        await wait_until(other.finished.is_set)
        with pytest.raises(RpcRemoteError) as info:
            await env.caller.call(other.worker_id, "take_over", {"room": "room-1"})
        assert info.value.code == "controller_draining"
        assert "room-1" not in other.rooms and env.controller.room("room-1").state.epoch == 1
    finally:
        await other.stop()


async def test_a_drain_places_a_room_refused_by_a_draining_controller_again_elsewhere(
    env: Env, journal: GatedJournal
) -> None:
    """Two drains at once: the room was placed on B before B was drained; B refuses it, and it goes
    to C, the only controller not drained."""
    await _room_with_history(env)
    b = await env.start_controller("controller-2")
    c = await env.start_controller("controller-3")
    a = env.controller
    try:
        env.cluster.placed["room-1"] = b.worker_id  # placed on B by the first schedule, before B's drain
        env.cluster.drained.update({a.worker_id, b.worker_id})
        await env.caller.call(b.worker_id, "migrate", {"admin_key": ADMIN_KEY})
        await wait_until(b.finished.is_set)
        await env.caller.call(a.worker_id, "migrate", {"admin_key": ADMIN_KEY})
        await wait_until(a.finished.is_set, what="A moved its room")
        assert list(c.rooms) == ["room-1"] and "room-1" not in b.rooms and not a.rooms
        assert env.cluster.placed == {"room-1": c.worker_id}
    finally:
        await b.stop()
        await c.stop()


async def test_a_drain_with_no_other_controller_waits_with_its_rooms_and_moves_them_once_one_joins(
    env: Env, journal: GatedJournal
) -> None:
    await _room_with_history(env)
    a = env.controller
    env.cluster.drained.add(a.worker_id)
    await env.caller.call(a.worker_id, "migrate", {"admin_key": ADMIN_KEY})
    await asyncio.sleep(0.3)
    assert list(a.rooms) == ["room-1"] and not a.finished.is_set()
    # the room is served meanwhile, untouched
    assert await env.call("text", participant="p1", to="all", message="while waiting") == "ok"
    assert a.room("room-1").state.epoch == 1
    c = await env.start_controller("controller-3")
    try:
        await wait_until(a.finished.is_set, timeout=10, what="the waiting drain moved the room")
        assert list(c.rooms) == ["room-1"]
    finally:
        await c.stop()


@pytest_asyncio.fixture
async def sqlite_now(tmp_path: Path) -> AsyncIterator[SqliteJournal]:
    """The embedded server's journal with ``durability = normal`` and ``commit = "each"``: it commits on the
    loop's thread, each record at once."""
    made = SqliteJournal(tmp_path / "journal.sqlite3", JournalSettings(durability="normal", commit="each"))
    await made.open()
    yield made
    await made.close()


async def test_with_a_journal_that_commits_at_once_a_commit_is_durable_and_acted_on_before_it_returns(
    local: TransportFactory, make_env: Any, sqlite_now: SqliteJournal, tmp_path: Path
) -> None:
    env: Env = await make_env(local, journal=sqlite_now)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    room = env.controller.room("room-1")
    before = room.last_offset
    done = env.controller.commit(room, machine.decide_text(room.state, ParticipantId("p1"), "p2", "now", 0.0))
    # No loop turn has passed: the record is in the file, and the room waits for nothing.
    assert room.pending == deque() and room.last_offset > before
    reader = SqliteJournal(tmp_path / "journal.sqlite3")
    await reader.open()
    try:
        assert [r.offset for r in await reader.replay("room-1", before)] == [room.last_offset]
    finally:
        await reader.close()
    await done
    await wait_until(lambda: [m for _, m in _texts(env, "p2", "b")] == ["now"], what="the delivery")


async def test_with_a_journal_that_commits_at_once_a_controller_whose_room_moved_on_is_fenced(
    local: TransportFactory, make_env: Any, sqlite_now: SqliteJournal
) -> None:
    env: Env = await make_env(local, journal=sqlite_now)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    stale = env.controller
    other = await env.start_controller("controller-2")
    env.controller = other
    await env.call("take_over", room="room-1")
    env.controller = stale
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="all", message="stale")
    assert (info.value.code, info.value.message) == ("controller_error", "the room moved to another controller")
    assert "room-1" not in stale.rooms and "p1" not in stale.participants  # unloaded
    assert all(message != "stale" for _, message in _texts(env, "p2", "b"))
    await other.stop()


def _kinds(records: list[JournalRecord]) -> list[list[str]]:
    return [[type(event).__name__ for event in decode_events(record.body)] for record in records]


async def _acked_text(env: Env) -> int:
    """p1 and p2 in room-1, p1 texts "one", p2 acknowledges it (applied at once here); its seq."""
    await env.join("p1")
    await env.join("p2")
    await env.call("text", participant="p1", to="all", message="one")
    await wait_until(lambda: len(_texts(env, "p2")) == 1)
    seq = _texts(env, "p2")[0][0]
    await env.ack("p2", seq)
    await wait_until(lambda: env.controller.participant("p2").outbox.acked == seq)
    return seq


async def test_an_ack_is_applied_at_once_and_its_record_rides_with_the_rooms_next_one(
    local: TransportFactory, make_env: Any, journal: GatedJournal,
) -> None:
    env: Env = await make_env(local, journal=journal, ack_record_delay=60.0)
    await _acked_text(env)
    written = _kinds(await journal.replay("room-1"))
    assert "Acked" not in sum(written, [])
    await env.call("text", participant="p1", to="all", message="two")
    after = _kinds(await journal.replay("room-1"))
    assert after[:len(written)] == written
    assert after[len(written)][0] == "Acked" and "Notified" in after[len(written)]
    assert len(after) == len(written) + 1


async def test_an_ack_with_nothing_after_it_is_written_on_its_own_after_the_delay(
    local: TransportFactory, make_env: Any, journal: GatedJournal,
) -> None:
    env: Env = await make_env(local, journal=journal, ack_record_delay=0.05)
    await _acked_text(env)

    async def ack_written() -> bool:
        return _kinds(await journal.replay("room-1"))[-1] == ["Acked"]

    await wait_until(ack_written, what="the ack's record of its own")


async def test_acks_beyond_the_bound_are_written_at_once(
    local: TransportFactory, make_env: Any, journal: GatedJournal,
) -> None:
    env: Env = await make_env(local, journal=journal, ack_record_delay=60.0, ack_record_max=1)
    await _acked_text(env)
    await wait_until(lambda: not env.controller.room("room-1").pending)
    assert _kinds(await journal.replay("room-1"))[-1] == ["Acked"]


async def test_a_snapshot_writes_the_waiting_acks_first_and_a_rebuild_has_them(
    local: TransportFactory, make_env: Any, journal: GatedJournal,
) -> None:
    env: Env = await make_env(local, journal=journal, ack_record_delay=60.0)
    seq = await _acked_text(env)
    room = env.controller.room("room-1")
    appends = journal.appends
    await env.controller.snapshot(room)
    assert journal.appends == appends + 1 and not room.deferred
    snapshot = await journal.snapshot("room-1")
    assert snapshot is not None and snapshot.offset == room.last_offset
    rebuilt = msgspec.msgpack.decode(snapshot.body, type=type(room.state))
    assert rebuilt.participants["p2"].outbox.acked == seq


async def test_a_controller_that_stops_writes_the_acks_that_wait(
    local: TransportFactory, make_env: Any, journal: GatedJournal,
) -> None:
    env: Env = await make_env(local, journal=journal, ack_record_delay=60.0)
    await _acked_text(env)
    await env.controller.stop()
    assert _kinds(await journal.replay("room-1"))[-1] == ["Acked"]


async def test_with_the_per_turn_commit_a_commit_is_acted_on_as_its_transaction_ends(
    local: TransportFactory, make_env: Any, tmp_path: Path
) -> None:
    journal = SqliteJournal(tmp_path / "journal.sqlite3", JournalSettings(durability="normal", commit="turn"))
    await journal.open()
    try:
        env: Env = await make_env(local, journal=journal)
        await env.join("p1")
        await env.join("p2", portal=env.portal_b)
        room = env.controller.room("room-1")
        before = room.last_offset
        done = env.controller.commit(room, machine.decide_text(room.state, ParticipantId("p1"), "p2", "turn", 0.0))
        assert isinstance(done, asyncio.Future) and not done.done() and len(room.pending) == 1
        await asyncio.sleep(0)  # one loop turn: the turn's transaction ends in it, and the room acts on it
        assert done.done() and room.pending == deque() and room.last_offset > before
        await done
        await wait_until(lambda: [m for _, m in _texts(env, "p2", "b")] == ["turn"], what="the delivery")
    finally:
        await journal.close()


async def test_a_repeated_request_waits_for_the_first_ones_record_and_is_not_told_ok_for_a_lost_write(
        env: Env, journal: GatedJournal) -> None:
    # The first attempt's answer is applied at once, its record written later: a repeat (the portal
    # retrying with the same request id) must wait for that record, and share its fate.
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    journal.gate.clear()  # the write of the text below waits
    first = asyncio.create_task(env.call("text", participant="p1", to="all", message="once", request_id="r9"))
    await wait_until(lambda: journal.appends >= 3, what="the text's record waiting")
    repeat = asyncio.create_task(env.call("text", participant="p1", to="all", message="once", request_id="r9"))
    await asyncio.sleep(0.1)
    assert not repeat.done()  # not "ok" before the record is durable
    journal.failing = True  # ... and it is lost
    journal.gate.set()
    for attempt in (first, repeat):
        with pytest.raises(RpcRemoteError) as info:
            await attempt
        assert info.value.code == "controller_error"
    assert _texts(env, "p2", "b") == []
