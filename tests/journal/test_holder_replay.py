"""HolderJournal's replay cost on a real RabbitMQ node: rooms replayed together from one holder stream read it
once (:mod:`journal.holder_replay`), and a room's snapshot is said due when the holder stream moved far past
its replay start (:mod:`journal.holder_due`; the controller's side is in
tests/conference_controller/test_journal_holder.py).

No assertion reads a clock."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from journal.base import JournalRecord, Snapshot
from journal import holder_replay
from journal.holder import HolderJournal
from journal.settings import StreamJournalSettings
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp]

MakeJournal = Callable[..., Awaitable[HolderJournal]]


@pytest.fixture(autouse=True)
def _passes_outlive_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass lingers (``LINGER``, 2 s) for rooms that join late; on a loaded machine a room's claims-log read
    alone may take longer, and a pass that ended meanwhile is read again by a new one.  The read counts
    asserted here are those of rooms that join a pass still there: it lingers until the journal closes."""
    monkeypatch.setattr(holder_replay, "LINGER", 3600.0)


@pytest_asyncio.fixture
async def make_journal(broker_url: str) -> AsyncIterator[MakeJournal]:
    """Opened journals on the session broker sharing one fresh prefix (closed at the end)."""
    prefix = f"hr{uuid.uuid4().hex[:8]}."
    made: list[HolderJournal] = []

    async def make(**overrides: object) -> HolderJournal:
        base: dict[str, object] = {"prefix": prefix, "room_max_bytes": 5_000_000, "room_segment_bytes": 1_000_000,
                                   "snapshot_max_bytes": 200_000, "snapshot_segment_bytes": 100_000,
                                   "rooms_max_bytes": 1_000_000, "rooms_segment_bytes": 500_000}
        base.update(overrides)
        journal = HolderJournal(broker_url, StreamJournalSettings(**base),  # type: ignore[arg-type]
                                name=f"replay-{len(made)}")
        made.append(journal)
        await journal.open()
        return journal

    yield make
    for journal in made:
        await journal.close()


async def _dead_holder(make_journal: MakeJournal, rooms: list[str], records: int, *,
                       spread: bool = False) -> tuple[dict[str, list[int]], int]:
    """A holder that wrote ``records`` records of each room, one per message, the rooms in turn, then died
    (closed): the offsets it was told, by room, and about how many messages its stream has.  ``spread``:
    each room is claimed only after the rooms before it wrote (their windows start all along the stream)."""
    holder = await make_journal()
    written: dict[str, list[int]] = {room: [] for room in rooms}
    rng = random.Random(7)
    messages = 0

    async def append(room: str) -> None:
        nonlocal messages
        written[room].append(await holder.append(room, 1, f"{room}:{len(written[room])}".encode()))
        messages += 1

    for n, room in enumerate(rooms):
        await holder.claim(room, 1)
        messages += 1
        if spread:
            for _ in range(records):
                await append(rng.choice(rooms[:n + 1]))
    if not spread:
        for _ in range(records):
            for room in rooms:
                await append(room)
    await holder.close()  # it died: nothing fences it; its rooms' windows run to its stream's end
    return written, messages


def _history(records: list[JournalRecord]) -> list[tuple[int, bytes]]:
    return [(r.offset, r.body) for r in records]


async def test_a_dead_holders_rooms_recovered_together_read_its_stream_once(make_journal: MakeJournal) -> None:
    rooms = [f"r{i}" for i in range(8)]
    written, messages = await _dead_holder(make_journal, rooms, 40)
    shared, alone = await make_journal(), await make_journal(holder_replay_share_bytes=0)

    async def recover(journal: HolderJournal, room: str) -> list[JournalRecord]:
        records = await journal.replay(room)  # as a controller's takeover: replay, then claim
        await journal.claim(room, 2 if journal is shared else 3)
        return records

    histories = await asyncio.gather(*(recover(shared, room) for room in rooms))
    for room, records in zip(rooms, histories):
        assert [r.offset for r in records] == written[room]
        assert [r.body for r in records] == [f"{room}:{n}".encode() for n in range(40)]
    assert messages <= shared.replay_reads <= messages + 3 * len(rooms), (shared.replay_reads, messages)
    # each on its own (phase 1's replay): the same histories, the stream read once per room
    again = await asyncio.gather(*(recover(alone, room) for room in rooms))
    assert [_history(records) for records in again] == [_history(records) for records in histories]
    assert alone.replay_reads >= len(rooms) * messages // 2


async def test_rooms_recovered_in_waves_share_what_the_first_wave_read(make_journal: MakeJournal) -> None:
    # the cluster manager hands rooms over failover_concurrency at a time: the next start as the first end
    rooms = [f"w{i}" for i in range(6)]
    written, messages = await _dead_holder(make_journal, rooms, 50)
    reader = await make_journal()
    for wave in (rooms[:3], rooms[3:]):
        histories = await asyncio.gather(*(reader.replay(room) for room in wave))
        for room, records in zip(wave, histories):
            assert [r.offset for r in records] == written[room]
    assert reader.replay_reads <= messages + 3 * len(rooms), (reader.replay_reads, messages)


async def test_rooms_that_join_a_read_late_get_what_it_read_before_and_what_is_before_it(
        make_journal: MakeJournal) -> None:
    rooms = [f"s{i}" for i in range(6)]
    written, messages = await _dead_holder(make_journal, rooms, 60, spread=True)  # windows start all along
    reader = await make_journal()
    order = list(reversed(rooms))  # the latest start first: each next one starts before what the read has
    replays: list[asyncio.Future[list[JournalRecord]]] = []
    for room in order:
        replays.append(asyncio.ensure_future(reader.replay(room)))
        await asyncio.sleep(0)
    histories = await asyncio.gather(*replays)
    for room, records in zip(order, histories):
        assert [r.offset for r in records] == written[room]
    # each alone would read ~3.5 times the stream; together, each stretch is read once (the pass, then an
    # extension for each window that starts before what the pass has), whatever order they join in
    assert reader.replay_reads <= messages * 3 // 2, (reader.replay_reads, messages)
    # a read that may keep almost nothing: those who cannot join read on their own, with the same outcome,
    # whatever order their claims-log reads end in
    stingy = await make_journal(holder_replay_share_bytes=1_000)
    again = await asyncio.gather(*(stingy.replay(room) for room in order))
    assert [_history(records) for records in again] == [_history(records) for records in histories]
    # one after the other, latest start first: the pass kept nothing (over 1,000 bytes), so each next window,
    # starting before it, reads on its own (~3.5 times the stream in all)
    one_by_one = await make_journal(holder_replay_share_bytes=1_000)
    for room, records in zip(order, histories):
        assert _history(await one_by_one.replay(room)) == _history(records)
    assert one_by_one.replay_reads > messages * 2, (one_by_one.replay_reads, messages)


async def test_replay_after_a_snapshot_and_a_fence_read_together_keep_their_histories(
        make_journal: MakeJournal) -> None:
    old = await make_journal()
    rooms = ["a", "b", "c"]
    for room in rooms:
        await old.claim(room, 1)
    offsets: dict[str, list[int]] = {room: [] for room in rooms}
    for n in range(30):
        for room in rooms:
            offsets[room].append(await old.append(room, 1, f"{room}{n}".encode()))
    await old.save_snapshot("b", Snapshot(offset=offsets["b"][9], epoch=1, body=b"b@10"))
    new = await make_journal()
    await new.claim("c", 2)  # c's window ends at its fence; the others run on
    for room in rooms:
        offsets[room].append(await old.append(room, 1, b"late") if room != "c" else 0)
    offsets["c"].pop()
    reader = await make_journal()
    snapshot = await reader.snapshot("b")
    assert snapshot is not None
    got = await asyncio.gather(reader.replay("a"), reader.replay("b", snapshot.offset), reader.replay("c"))
    assert [r.offset for r in got[0]] == offsets["a"]
    assert [r.offset for r in got[1]] == offsets["b"][10:]
    assert [r.offset for r in got[2]] == offsets["c"]
