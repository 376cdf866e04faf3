"""Sweeping dead holder streams (journal/holder_sweeper.py) on the session's real RabbitMQ node: a dead
journal's stream goes once no room's replay needs it, one a room still needs stays, a live journal's
stays, and a journal never declares its own stream again once it was deleted.

Waits go through ``wait_until``; the one on a journal being taken for dead lasts ``holder_dead_after``
(10 s, the smallest allowed)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from journal.base import Fenced, JournalUnavailable, Snapshot
from journal.holder import HolderJournal
from journal.holder_sweeper import SWEPT
from journal.stream_read import read
from tests.journal.holder_support import MakeJournal, journal_maker
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp]

ROOT = Path(__file__).resolve().parents[2]

DEAD_AFTER = 10.0


@pytest_asyncio.fixture
async def made_journals() -> AsyncIterator[list[HolderJournal]]:
    made: list[HolderJournal] = []
    yield made
    for journal in made:
        await journal.close()


@pytest_asyncio.fixture
async def make_journal(broker_url: str, made_journals: list[HolderJournal]) -> MakeJournal:
    """Opened journals on the session broker sharing one fresh prefix; no sweep rounds unless asked."""
    return journal_maker(broker_url, made_journals, "sweep", holder_dead_after=DEAD_AFTER, holder_sweep_interval=0)


async def _exists(journal: HolderJournal, holder: str) -> bool:
    return await journal._link.exists(holder)


async def _taken_for_dead(sweeper: HolderJournal, holder: str) -> None:
    """Until ``sweeper`` no longer sees a sign of life of ``holder`` (``holder_dead_after`` after its last)."""
    async def dead() -> bool:
        live = await sweeper._sweeper._live()
        assert live is not None
        return holder not in live

    await wait_until(dead, timeout=DEAD_AFTER * 3, interval=0.5, what=f"{holder} taken for dead")


async def _sweep_now(journal: HolderJournal) -> list[str]:
    """A sweep round that looks at every dead holder stream again now (not after the doubling wait the
    journal's own rounds keep for one found needed)."""
    journal._sweeper._later.clear()
    return await journal._sweeper.sweep()


async def _snapshot_at(journal: HolderJournal, room: str, epoch: int) -> int:
    offset = await journal.append(room, epoch, b"snapshotted")
    await journal.save_snapshot(room, Snapshot(offset=offset, epoch=epoch, body=b"state"))
    return offset


async def test_a_dead_journals_holder_stream_is_swept_once_no_room_needs_it(
        make_journal: MakeJournal, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    old, new = await make_journal(), await make_journal(holder_sweep_interval=60)  # its first round: in 60 s
    await old.claim("moved", 1)
    await old.append("moved", 1, b"m")
    await old.claim("stays", 1)
    stays = [await old.append("stays", 1, f"s{i}".encode()) for i in range(3)]
    await old.claim("forgotten", 1)
    await old.append("forgotten", 1, b"f")
    await old.forget("forgotten")
    await old.close()  # a controller restart: old's instance is gone, its stream stays

    await new.claim("moved", 2)
    await _snapshot_at(new, "moved", 2)
    assert await _sweep_now(new) == []  # old noted a sign of life less than holder_dead_after ago
    assert await _exists(new, old.holder)

    await _taken_for_dead(new, old.holder)
    # "stays" was never claimed again: its history is old's window, which a replay (and a claimer) reads
    assert await _sweep_now(new) == []
    assert await _exists(new, old.holder)
    assert [r.offset for r in await new.replay("stays")] == stays
    # found needed: the journal's own rounds look at it again after holder_sweep_interval (60 s), then twice that
    assert new._sweeper._later[old.holder][1] == 60
    assert await new._sweeper.sweep() == []
    assert new._sweeper._later[old.holder][1] == 60  # not looked at (it would wait 120 s now)

    assert await new.claim("stays", 2) == stays[-1]
    # claimed, but no snapshot past old's window: a replay from the start still reads it
    assert await _sweep_now(new) == []
    assert await _exists(new, old.holder)

    after = await _snapshot_at(new, "stays", 2)
    later = await new.append("stays", 2, b"later")
    # a journal whose sweep rounds run on their own deletes it
    sweeper = await make_journal(holder_sweep_interval=0.2)
    await wait_until(lambda: old.holder in sweeper._sweeper.swept, timeout=20, what="old's stream swept")
    assert not await _exists(new, old.holder)
    swept = [r.getMessage() for r in caplog.records if r.getMessage().startswith("holder_stream_swept")]
    assert len(swept) == 1 and old.holder in swept[0] and "rooms=3" in swept[0]
    assert [r.offset for r in await new.replay("stays", after=after)] == [later]
    assert [r.body for r in await new.replay("moved")][-1] == b"snapshotted"
    # the forgotten room's claims log still names old's deleted stream: its next claimer fences nothing
    assert await new.claim("forgotten", 2) == 0
    assert [r.body for r in await new.replay("forgotten")] == []
    await new.append("forgotten", 2, b"anew")
    assert [r.body for r in await sweeper.replay("forgotten")] == [b"anew"]
    # the directory says it was swept: no later round looks at it again
    entries = await read(new._link, new._link.layout.rooms_queue, "first") or []
    assert [m.headers.get("h") for m in entries if m.kind == SWEPT] == [old.holder]
    assert await _sweep_now(new) == []
    assert sweeper._sweeper.swept == [old.holder]


async def test_a_live_journals_holder_stream_is_never_swept(make_journal: MakeJournal) -> None:
    live, other = await make_journal(), await make_journal()
    await live.claim("r", 1)
    await live.append("r", 1, b"live")
    await live.claim("gone", 1)
    await live.forget("gone")
    await other.claim("r", 2)  # every room of live's moved on, and is snapshotted past its window
    await _snapshot_at(other, "r", 2)
    dead = await make_journal()
    await dead.claim("d", 1)
    await dead.forget("d")
    await dead.close()
    await _taken_for_dead(other, dead.holder)  # holder_dead_after went by: live noted signs of life since
    assert await _sweep_now(other) == [dead.holder]  # a dead one whose rooms are gone too goes
    assert await _exists(other, live.holder)
    assert await _sweep_now(live) == []
    await live.claim("new", 1)  # and live's stream still works
    assert [r.body for r in await other.replay("new")] == []
    offset = await live.append("new", 1, b"still here")
    assert [r.offset for r in await other.replay("new")] == [offset]


@pytest.mark.parametrize("connection_lost", [True, False], ids=["connection-lost", "still-attached"])
async def test_a_journal_whose_holder_stream_was_deleted_goes_on_in_a_new_one(
        make_journal: MakeJournal, connection_lost: bool) -> None:
    journal, other = await make_journal(), await make_journal()
    await journal.claim("kept", 1)
    await journal.append("kept", 1, b"before")
    await journal.claim("moved", 1)
    await journal.append("moved", 1, b"m")
    await other.claim("moved", 2)
    old = journal.holder
    await other._link.delete(old)  # as a sweeper would, had it taken journal for dead
    if connection_lost:  # its tail attaches again (a passive declare finds the stream gone) ...
        conn = journal._link.conn
        assert conn is not None
        journal._link.drop(conn, ConnectionError("test: connection lost"))
    # ... or, still attached, the broker cancels its consumer (it attaches again at once) or the message comes
    # back unroutable.  A record that meets the lost stream is not written (JournalUnavailable); the journal
    # then lets go of every room it held, which must be held again: the claims log names the deleted stream,
    # so it refuses them (Fenced)
    refused: list[str] = []
    while not refused or refused[-1] != "Fenced":
        assert len(refused) < 2, refused
        with pytest.raises((Fenced, JournalUnavailable)) as caught:
            await journal.append("kept", 1, b"after")
        refused.append("Fenced" if isinstance(caught.value, Fenced) else "JournalUnavailable")
    assert refused in (["Fenced"], ["JournalUnavailable", "Fenced"])
    if connection_lost:  # its tail finds the stream gone at the write that attaches it again
        assert refused == ["JournalUnavailable", "Fenced"]
    with pytest.raises(Fenced):
        await journal.append("moved", 1, b"after")
    # a room it claims now is written to a new holder stream, announced (sign of life) and listed
    assert await journal.claim("new", 1) == 0
    offset = await journal.append("new", 1, b"anew")
    assert journal.holder != old
    assert [r.offset for r in await other.replay("new")] == [offset]
    assert [r.offset for r in await journal.replay("new")] == [offset]
    assert await journal.claim("kept", 2) == 0  # the deleted window is read by no one: its fence is skipped
    kept = await journal.append("kept", 2, b"kept anew")
    assert [r.offset for r in await other.replay("kept")] == [kept]
    assert not await _exists(other, old)  # never made again
    assert await _exists(other, journal.holder)
    live = await other._sweeper._live()
    assert live is not None and journal.holder in live
    listed = await other._sweeper._listed()
    assert sorted(listed[journal.holder]) == ["kept", "new"]
    assert await _sweep_now(other) == []
    assert await journal.append("new", 1, b"again") > offset


async def test_a_claim_after_retention_dropped_the_windows_start_still_fences_and_gets_the_last_record(
        make_journal: MakeJournal) -> None:
    # the smallest holder stream allowed: 1.5 MB of records drop the segment with the room's START
    old = await make_journal(holder_max_bytes=1_000_000, holder_segment_bytes=200_000)
    new = await make_journal()
    await old.claim("r", 1)
    offsets = [await old.append("r", 1, bytes(10_000)) for _ in range(150)]
    assert await new.claim("r", 2) == offsets[-1]  # the fence's read starts where the stream now starts
    with pytest.raises(Fenced):
        await old.append("r", 1, b"too late")
    records = await new.replay("r")
    assert 0 < len(records) < len(offsets)  # what retention left of old's window, then new's (empty)
    assert [r.offset for r in records] == offsets[-len(records):]


async def test_without_the_signs_of_life_stream_no_journal_is_taken_for_dead(make_journal: MakeJournal) -> None:
    old, new = await make_journal(), await make_journal()
    await old.claim("r", 1)
    await old.forget("r")  # no room needs old's stream: only its sign of life keeps it
    await old.close()
    await new._link.delete(new._link.layout.holders_queue)  # as an operator might
    assert await _sweep_now(new) == []
    assert await _exists(new, old.holder)


async def test_a_frozen_journal_whose_stream_was_swept_is_refused_then_goes_on_in_a_new_stream(
        make_journal: MakeJournal, broker_url: str) -> None:
    new = await make_journal()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.journal.holder_frozen", broker_url, new.settings.prefix, "r", str(DEAD_AFTER),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    lines: list[str] = []

    async def read_until(count: int) -> None:
        while sum(line.startswith("ok") for line in lines) < count:
            line = await asyncio.wait_for(child.stdout.readline(), timeout=60)  # type: ignore[union-attr]
            assert line, "the appender stopped before it was refused"
            lines.append(line.decode().strip())

    try:
        await read_until(10)
        child.send_signal(signal.SIGSTOP)  # frozen: no more signs of life either
        try:
            holder = lines[0].split()[1]
            last = await new.claim("r", 2)
            assert last > 0
            after = await _snapshot_at(new, "r", 2)
            await _taken_for_dead(new, holder)
            assert await _sweep_now(new) == [holder]
        finally:
            child.send_signal(signal.SIGCONT)
        rest, _ = await asyncio.wait_for(child.communicate(), timeout=60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0
    lines += rest.decode().splitlines()
    # every append after it resumed was refused: JournalUnavailable while it finds its stream gone (its
    # connection lost while it was frozen, or its consumer cancelled), Fenced from then on (its room is held
    # again through the claims log, which says the room moved) ...
    assert max(int(line.split()[2]) for line in lines if line.startswith("ok")) <= last
    refusals = [line.split()[2] for line in lines if line.startswith("refused")]
    assert len(refusals) >= 3
    assert "Fenced" in refusals and set(refusals[refusals.index("Fenced"):]) == {"Fenced"}
    # ... and its claim of a room it never held goes to a new holder stream (its old one is not made again),
    # whose records another journal replays
    assert "claim done" in lines
    anew = int(next(line for line in lines if line.startswith("anew")).split()[1])
    renewed = [line.split()[1] for line in lines if line.startswith("holder")]
    assert len(renewed) == 2 and renewed[1] != holder
    assert not await _exists(new, holder)
    assert await _exists(new, renewed[1])
    assert [r.offset for r in await new.replay("r.other")] == [anew]
    later = await new.append("r", 2, b"later")
    assert [r.offset for r in await new.replay("r", after=after)] == [later]
