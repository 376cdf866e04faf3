"""The journal contract on :class:`journal.sqlite.SqliteJournal`, and what only a file on disk can
promise: records that survive a close, and a ``kill -9`` in the middle of appends."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from journal import Fenced, JournalUnavailable, Snapshot
from journal.settings import JournalSettings
from journal.sqlite import SqliteJournal
from tests.journal.appender import appended_until_killed
from tests.journal.contract import JournalContract, MakeJournal
from tests.support.waiting import wait_until


class TestSqliteJournal(JournalContract):
    @pytest.fixture
    def make(self, tmp_path: Path) -> MakeJournal:
        return lambda: SqliteJournal(tmp_path / "journal.sqlite3", JournalSettings())


@pytest_asyncio.fixture
async def journal(tmp_path: Path) -> AsyncIterator[SqliteJournal]:
    journal = SqliteJournal(tmp_path / "journal.sqlite3")
    await journal.open()
    yield journal
    await journal.close()


async def test_appends_that_arrive_together_are_committed_together(journal: SqliteJournal) -> None:
    offsets = await asyncio.gather(*(journal.append("r", 1, bytes([i])) for i in range(100)))
    assert len(set(offsets)) == 100
    assert journal.writes == 100
    assert journal.commits <= 2


async def test_max_batch_caps_how_many_writes_one_transaction_carries(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3", JournalSettings(max_batch=1))
    await journal.open()
    try:
        await asyncio.gather(*(journal.append("r", 1, b"x") for _ in range(10)))
        assert journal.commits == journal.writes == 10
    finally:
        await journal.close()


async def test_beyond_max_pending_appends_wait_their_turn_and_all_get_in(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3", JournalSettings(max_pending=3))
    await journal.open()
    try:
        offsets = await asyncio.gather(*(journal.append("r", 1, bytes([i])) for i in range(20)))
        assert journal.commits >= 7  # never more than 3 writes queued, so never more than 3 per group
        assert [r.offset for r in await journal.replay("r")] == sorted(offsets)
    finally:
        await journal.close()


async def test_a_fenced_append_does_not_spoil_the_others_in_its_group(journal: SqliteJournal) -> None:
    await journal.claim("r", 2)
    results = await asyncio.gather(journal.append("r", 2, b"a"), journal.append("r", 1, b"stale"),
                                   journal.append("r", 2, b"b"), return_exceptions=True)
    assert isinstance(results[1], Fenced)
    assert [r.body for r in await journal.replay("r")] == [b"a", b"b"]
    assert journal.commits == 2  # the claim, then the three appends as one group


@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_a_claim_through_another_connection_fences_off_a_holder_that_wrote_before_it(
    durability: str, tmp_path: Path
) -> None:
    # The writer keeps the rooms' epochs in memory between its transactions: a claim made through
    # another connection to the file (another process) must still fence it off.
    path = tmp_path / "j.sqlite3"
    settings = msgspec.convert({"durability": durability}, JournalSettings)
    holder, claimer = SqliteJournal(path, settings), SqliteJournal(path, settings)
    await holder.open()
    await claimer.open()
    try:
        await holder.claim("r", 1)
        first = await holder.append("r", 1, b"before")
        assert await claimer.claim("r", 2) == first
        with pytest.raises(Fenced):
            await holder.append("r", 1, b"after the claim")
        assert await holder.append("r", 2, b"under the new epoch") > first
        assert [r.body for r in await claimer.replay("r")] == [b"before", b"under the new epoch"]
    finally:
        await holder.close()
        await claimer.close()


async def test_close_commits_what_was_accepted_before_it(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path)
    await journal.open()
    appends = [asyncio.create_task(journal.append("r", 1, bytes([i]))) for i in range(30)]
    await asyncio.sleep(0)  # let every append enqueue (no time passes)
    await journal.close()
    offsets = [await task for task in appends]
    assert await _offsets_in(path) == offsets


async def test_a_journal_that_cannot_be_opened_says_which_file(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path)  # a directory
    with pytest.raises(JournalUnavailable, match=str(tmp_path)):
        await journal.open()
    with pytest.raises(JournalUnavailable):
        await journal.append("r", 1, b"x")


async def test_a_failed_commit_fails_its_writes_and_the_journal_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path, JournalSettings(busy_timeout=0.0))
    await journal.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        results = await asyncio.gather(*(journal.append("r", 1, b"lost") for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, JournalUnavailable) and "locked" in str(r) for r in results)
        assert [r.getMessage().split()[0] for r in caplog.records if r.levelname == "WARNING"] == [
            "journal_commit_failed"]
        other.execute("ROLLBACK")
        offset = await journal.append("r", 1, b"kept")
        assert [(r.offset, r.body) for r in await journal.replay("r")] == [(offset, b"kept")]
    finally:
        other.close()
        await journal.close()


@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_every_offset_returned_before_a_kill_9_is_in_the_journal_after_it(durability: str, tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    printed = [(room, offset) for room, offset, _ in await appended_until_killed(path, durability, "sqlite")]

    journal = SqliteJournal(path)
    await journal.open()
    try:
        for room in {room for room, _ in printed}:
            kept = {record.offset for record in await journal.replay(room)}
            missing = [offset for r, offset in printed if r == room and offset not in kept]
            assert not missing, f"{room}: offsets returned but not in the journal: {missing}"
    finally:
        await journal.close()


def test_the_settings_default_to_appends_that_survive_the_process_and_refuse_unknown_policies() -> None:
    assert JournalSettings().durability == "normal"
    assert msgspec.convert({"durability": "normal", "max_pending": 5}, JournalSettings).max_pending == 5
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"durability": "sometimes"}, JournalSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_pendign": 5}, JournalSettings)


@pytest.mark.parametrize("bounds", [{"max_pending": 0}, {"max_batch": 0}])
def test_a_journal_needs_room_for_at_least_one_write(bounds: dict[str, int], tmp_path: Path) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bounds, JournalSettings)
    unchecked = JournalSettings(max_pending=bounds.get("max_pending", 1), max_batch=bounds.get("max_batch", 1))
    with pytest.raises(ValueError):
        SqliteJournal(tmp_path / "j.sqlite3", unchecked)


@pytest.mark.parametrize("durability", ["normal", "off"])
async def test_the_weaker_durability_policies_keep_the_same_semantics(durability: str, tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path, msgspec.convert({"durability": durability}, JournalSettings))
    await journal.open()
    offsets = await asyncio.gather(*(journal.append("r", 1, bytes([i])) for i in range(10)))
    await journal.close()
    assert await _offsets_in(path) == offsets


async def test_submit_queues_at_once_and_keeps_the_order_and_the_bound(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3", JournalSettings(max_pending=3))
    await journal.open()
    try:
        await journal.claim("r", 1)
        futures = [journal.submit("r", 1, f"{n}".encode()) for n in range(6)]
        offsets = [await future for future in futures]
        assert offsets == sorted(offsets) and len(set(offsets)) == 6
        assert [r.body for r in await journal.replay("r")] == [f"{n}".encode() for n in range(6)]
        await journal.claim("r", 2)
        with pytest.raises(Fenced):
            await journal.submit("r", 1, b"stale")
    finally:
        await journal.close()


async def _offsets_in(path: Path) -> list[int]:
    """The offsets of room ``r`` in the journal at ``path``, read by a journal opened afresh."""
    reopened = SqliteJournal(path)
    await reopened.open()
    try:
        return [record.offset for record in await reopened.replay("r")]
    finally:
        await reopened.close()


async def test_with_normal_durability_the_writes_of_one_loop_turn_are_committed_together_at_its_end(
    tmp_path: Path
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3", JournalSettings(durability="normal"))
    await journal.open()
    try:
        futures = [journal.submit(f"r{i % 3}", 1, bytes([i])) for i in range(100)]
        await asyncio.sleep(0)  # one loop turn: no thread to wait for
        assert all(future.done() for future in futures)
        assert len({(i % 3, future.result()) for i, future in enumerate(futures)}) == 100  # offsets count per room
        assert (journal.commits, journal.writes) == (1, 100)
    finally:
        await journal.close()


async def test_append_now_commits_before_it_returns_after_what_was_queued(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path, JournalSettings(durability="normal", commit="each"))
    reader = SqliteJournal(path)
    await journal.open()
    await reader.open()
    try:
        queued = journal.submit("r", 1, b"queued first")
        offset = journal.append_now("r", 1, b"now")
        assert queued.done() and offset is not None and queued.result() < offset
        assert [r.body for r in await reader.replay("r")] == [b"queued first", b"now"]  # in the file
        await reader.claim("r", 2)
        with pytest.raises(Fenced):
            journal.append_now("r", 1, b"stale")
    finally:
        await journal.close()
        await reader.close()
    with pytest.raises(JournalUnavailable):
        journal.append_now("r", 2, b"closed")


async def test_append_now_that_cannot_commit_raises_journal_unavailable_and_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path, JournalSettings(durability="normal", commit="each", busy_timeout=0))
    await journal.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert journal.append_now("r", 1, b"first") is not None
        other.execute("BEGIN IMMEDIATE")  # another process holds the file's write lock
        with pytest.raises(JournalUnavailable):
            journal.append_now("r", 1, b"lost")
        other.execute("ROLLBACK")
        assert journal.append_now("r", 1, b"second") is not None
        assert [r.body for r in await journal.replay("r")] == [b"first", b"second"]
    finally:
        other.close()
        await journal.close()


async def test_append_now_leaves_an_fsyncing_journal_to_its_writer_thread(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3", JournalSettings(durability="full", commit="each"))
    await journal.open()
    try:
        assert journal.append_now("r", 1, b"x") is None
        assert await journal.replay("r") == [] and journal.writes == 0
    finally:
        await journal.close()


async def test_by_default_the_appends_of_one_loop_turn_share_one_transaction(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3", JournalSettings(durability="normal"))
    await journal.open()
    try:
        assert journal.append_now("r", 1, b"x") is None  # commit = "turn": the record waits for the turn's end
        appends = [journal.submit(f"room-{n}", 1, b"x") for n in range(10)]
        assert not any(append.done() for append in appends)
        assert [await append for append in appends] == [1] * 10
        assert journal.writes == 10 and journal.commits == 1
    finally:
        await journal.close()


async def test_with_normal_durability_the_wal_is_checkpointed_and_stays_bounded(tmp_path: Path) -> None:
    # The writer's connection does not checkpoint (it would fsync on the loop's thread): the reader's
    # thread does, every so many commits, so the WAL is reused instead of growing with every record.
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path, JournalSettings(durability="normal", commit="each", checkpoint_every=300))
    await journal.open()
    try:
        for _ in range(3000):  # 3 MB of records, one commit each: ~44 MB of WAL without checkpoints
            if journal.append_now("r", 1, bytes(1000)) is None:  # a checkpoint is running: wait for it
                await journal.append("r", 1, bytes(1000))
        wal = path.with_name(path.name + "-wal").stat().st_size
    finally:
        await journal.close()
    assert journal.writes == 3000
    assert wal < 10_000_000


async def test_the_writes_of_a_turn_count_one_by_one_towards_the_next_checkpoint(tmp_path: Path) -> None:
    # 6,000 records of 1 KB in 30 transactions: ~7.5 MB of WAL if only transactions counted.
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path, JournalSettings(durability="normal", checkpoint_every=300))
    await journal.open()
    try:
        for _ in range(30):
            await asyncio.gather(*[journal.submit("r", 1, bytes(1000)) for _ in range(200)])
        wal = path.with_name(path.name + "-wal").stat().st_size
    finally:
        await journal.close()
    assert journal.writes == 6000 and journal.commits <= 60
    assert wal < 3_000_000


async def test_a_forgotten_rooms_offsets_go_on_increasing_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path)
    await journal.open()
    try:
        await journal.claim("r", 1)
        old = [await journal.append("r", 1, bytes([i])) for i in range(3)]
        await journal.forget("r")
    finally:
        await journal.close()
    reopened = SqliteJournal(path)
    await reopened.open()
    try:
        assert await reopened.claim("r", 2) == 0  # a new history…
        new = await reopened.append("r", 2, b"new")
        assert new > old[-1]  # …whose offsets never go back
        assert [(r.offset, r.body) for r in await reopened.replay("r")] == [(new, b"new")]
    finally:
        await reopened.close()


_EARLIER_LAYOUT = """
CREATE TABLE rooms (room TEXT PRIMARY KEY, epoch INTEGER NOT NULL, last INTEGER NOT NULL,
                    listed INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, epoch INTEGER NOT NULL,
                      body BLOB NOT NULL);
CREATE INDEX records_by_room ON records (room, id);
CREATE TABLE snapshots (room TEXT PRIMARY KEY, offset INTEGER NOT NULL, epoch INTEGER NOT NULL,
                        body BLOB NOT NULL) WITHOUT ROWID;
INSERT INTO rooms VALUES ('a', 1, 0, 1), ('b', 3, 0, 1), ('gone', 2, 0, 0);
INSERT INTO records (room, epoch, body) VALUES ('a', 1, x'01'), ('b', 3, x'02'), ('a', 1, x'03'),
                                                 ('gone', 2, x'04'), ('b', 3, x'05');
INSERT INTO snapshots VALUES ('b', 2, 3, x'73');
DELETE FROM records WHERE room = 'gone' OR (room = 'b' AND id <= 2);
"""


async def test_a_file_of_the_earlier_layout_is_converted_and_keeps_its_offsets(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_EARLIER_LAYOUT)  # records 1..5; 'gone' (4) was forgotten, 'b' snapshotted at 2
    db.close()
    journal = SqliteJournal(path)
    await journal.open()
    try:
        assert [(r.offset, r.body) for r in await journal.replay("a")] == [(1, b"\x01"), (3, b"\x03")]
        assert [(r.offset, r.body) for r in await journal.replay("b", after=2)] == [(5, b"\x05")]
        assert await journal.snapshot("b") == Snapshot(offset=2, epoch=3, body=b"s")
        assert await journal.rooms() == ["a", "b"]
        assert await journal.claim("a", 2) == 3
        assert await journal.append("a", 2, b"a") > 5  # past every offset the old counter gave
        assert await journal.append("b", 3, b"b") > 5
        assert await journal.claim("gone", 3) == 0
        assert await journal.append("gone", 3, b"g") > 5
        with pytest.raises(Fenced):
            await journal.append("b", 2, b"stale")
    finally:
        await journal.close()
    db = sqlite3.connect(path)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "records" not in tables
    finally:
        db.close()
    again = SqliteJournal(path)  # opened again: nothing left to convert, nothing lost
    await again.open()
    try:
        assert [r.body for r in await again.replay("a")] == [b"\x01", b"\x03", b"a"]
    finally:
        await again.close()


@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_submit_then_hands_each_outcome_over_in_order_when_its_transaction_ends(
    durability: str, tmp_path: Path
) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3",
                            msgspec.convert({"durability": durability, "max_pending": 4}, JournalSettings))
    await journal.open()
    try:
        await journal.claim("r", 1)
        got: list[tuple[int, Any]] = []

        def keep(n: int) -> Callable[[int | Exception], None]:
            return lambda outcome: got.append((n, outcome))

        taken = [journal.submit_then("r", 1, bytes([n]), keep(n)) for n in range(6)]
        assert taken == [True] * 4 + [False] * 2  # past max_pending nothing is queued
        assert got == []
        await wait_until(lambda: len(got) == 4, what="the outcomes")
        assert [n for n, _ in got] == [0, 1, 2, 3]
        offsets = [offset for _, offset in got]
        assert offsets == sorted(offsets) and [r.body for r in await journal.replay("r")] == [bytes([n]) for n in range(4)]
        await journal.claim("r", 2)
        stale: list[Any] = []
        assert journal.submit_then("r", 1, b"stale", stale.append)
        await wait_until(lambda: bool(stale), what="the stale write's outcome")
        assert isinstance(stale[0], Fenced)
        # A callback that fails is logged; the others of its transaction still get theirs.
        after: list[Any] = []
        def fail(outcome: int | Exception) -> None:
            raise RuntimeError("the test's callback failed")

        journal.submit_then("r", 2, b"x", fail)
        journal.submit_then("r", 2, b"y", after.append)
        await wait_until(lambda: bool(after), what="the second outcome")
        assert isinstance(after[0], int)
    finally:
        await journal.close()
