"""The journal contract on :class:`journal.logfile.FileJournal`, and what only its files can promise."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from journal import Fenced, JournalUnavailable, Snapshot
from journal.logfile import FileJournal
from journal.logfile_frames import HEAD_SIZE, Kind, encode
from journal.settings import FileJournalSettings
from tests.journal.appender import appended_until_killed
from tests.journal.contract import JournalContract, MakeJournal


class TestFileJournal(JournalContract):
    @pytest.fixture
    def make(self, tmp_path: Path) -> MakeJournal:
        return lambda: FileJournal(tmp_path / "journal.d", FileJournalSettings())


async def test_segments_whose_frames_are_all_dead_are_deleted_and_epochs_and_offsets_survive_a_reopen(
        tmp_path: Path) -> None:
    settings = FileJournalSettings(segment_bytes=4096)
    journal = FileJournal(tmp_path, settings)
    await journal.open()
    await journal.claim("gone", 7)
    await journal.claim("r", 3)
    offsets = [await journal.append("r", 3, bytes(200)) for _ in range(100)]  # ~6 segments
    await journal.forget("gone")
    assert len(list(tmp_path.glob("*.seg"))) > 4
    await journal.save_snapshot("r", Snapshot(offset=offsets[-1], epoch=3, body=b"s"))
    await journal.append("r", 3, b"after")  # the next group deletes what the snapshot left dead
    await asyncio.sleep(0.2)
    assert len(list(tmp_path.glob("*.seg"))) <= 2
    await journal.close()

    again = FileJournal(tmp_path, settings)
    await again.open()
    try:
        assert await again.rooms() == ["r"]
        assert await again.snapshot("r") == Snapshot(offset=offsets[-1], epoch=3, body=b"s")
        assert [r.body for r in await again.replay("r", after=offsets[-1])] == [b"after"]
        with pytest.raises(Fenced):
            await again.claim("gone", 7)
        with pytest.raises(Fenced):
            await again.append("r", 2, b"stale")
        assert await again.append("r", 3, b"more") == offsets[-1] + 2
    finally:
        await again.close()


async def test_a_torn_tail_is_truncated_and_a_bad_frame_before_the_end_is_refused(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    await journal.open()
    await journal.append("r", 1, b"one")
    await journal.append("r", 1, b"two")
    await journal.close()
    [segment] = tmp_path.glob("*.seg")
    whole = segment.read_bytes()
    segment.write_bytes(whole + encode(Kind.RECORD, b"r", 1, 3, b"three")[:20])  # half a frame

    journal = FileJournal(tmp_path)
    await journal.open()
    assert [r.body for r in await journal.replay("r")] == [b"one", b"two"]
    assert await journal.append("r", 1, b"three") == 3
    await journal.close()

    data = bytearray(segment.read_bytes())
    data[HEAD_SIZE + 2] ^= 0xFF  # the first frame's room: its crc fails, frames follow it
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalUnavailable, match="corrupt at byte 0"):
        await FileJournal(tmp_path).open()


async def test_a_second_open_of_the_directory_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    first = FileJournal(tmp_path)
    await first.open()
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import asyncio, sys; from journal.logfile import FileJournal; "
            "asyncio.run(FileJournal(sys.argv[1]).open())", str(tmp_path),
            cwd=Path(__file__).resolve().parents[2], stderr=asyncio.subprocess.PIPE)
        _, err = await child.communicate()
        assert child.returncode != 0 and b"in use by another process" in err
    finally:
        await first.close()


@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_everything_handed_over_before_a_kill_9_is_there_after_it_in_order_and_once(
        durability: str, tmp_path: Path) -> None:
    # Tasks looping on append, and submit_then every loop turn, over segments of 64 KiB (they roll).
    printed = await appended_until_killed(tmp_path, durability, "file", lines=3000)
    assert any(body.startswith(b"then:") for _, _, body in printed)

    journal = FileJournal(tmp_path)
    await journal.open()
    try:
        for room in {room for room, _, _ in printed}:
            records = await journal.replay(room)
            offsets = [record.offset for record in records]
            assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
            bodies = [record.body for record in records]
            assert len(set(bodies)) == len(bodies), f"{room}: a record is there twice"
            kept = {record.offset: record.body for record in records}
            mine = [(offset, body) for r, offset, body in printed if r == room]
            # submit_then's outcomes are handed over in queue order (an append's, when its task resumes)
            then = [offset for offset, body in mine if body.startswith(b"then:")]
            assert then == sorted(then)
            missing = [(offset, body) for offset, body in mine if kept.get(offset) != body]
            assert not missing, f"{room}: handed over but not in the journal: {missing[:5]}"
    finally:
        await journal.close()


async def test_beyond_max_pending_submit_then_queues_nothing_and_appends_wait_their_turn(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, FileJournalSettings(max_pending=3))
    await journal.open()
    try:
        handed: list[int | Exception] = []
        taken = [journal.submit_then("r", 1, bytes([i]), handed.append) for i in range(5)]
        assert taken == [True] * 3 + [False] * 2  # past max_pending nothing is queued
        offsets = await asyncio.gather(*(journal.append("r", 1, bytes([i])) for i in range(20)))
        assert handed == [1, 2, 3]
        assert journal.commits >= 7  # never more than 3 appends waiting, so never more than 3 per group
        assert [r.offset for r in await journal.replay("r")] == [1, 2, 3, *sorted(offsets)]
        # submit past the bound waits for a slot as append does, and gets in.
        assert [journal.submit_then("r", 1, b"x", handed.append) for _ in range(3)] == [True] * 3
        late = journal.submit("r", 1, b"late")
        assert await late == offsets[-1] + 4
    finally:
        await journal.close()


def _failing_on(journal: FileJournal, call: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.<call>`` on the journal's segment fails as a full disk does (``write``: after a short write)."""
    real = getattr(os, call)
    short: list[bool] = []

    def failing(fd: int, *args: Any) -> Any:
        if fd != journal._fd:
            return real(fd, *args)
        if call == "write" and not short:
            short.append(True)
            return real(fd, bytes(args[0])[:10])  # a frame cut short: the rest gets ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, call, failing)


async def test_a_failed_write_fails_its_group_and_the_next_write_after_the_disk_is_back_restores_the_tail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="switchboard.journal")
    journal = FileJournal(tmp_path)
    await journal.open()
    kept = await journal.append("r", 1, b"kept")
    [segment] = tmp_path.glob("*.seg")
    size = segment.stat().st_size
    _failing_on(journal, "write", monkeypatch)
    truncate = os.ftruncate
    monkeypatch.setattr(os, "ftruncate", lambda fd, length: None)  # the torn bytes stay: recovery cuts them
    handed: list[int | Exception] = []
    assert journal.submit_then("r", 1, b"lost", handed.append)
    appended = await asyncio.gather(journal.append("r", 1, b"lost too"), journal.append("s", 1, b"and this"),
                                    return_exceptions=True)
    assert [type(outcome) for outcome in [*handed, *appended]] == [JournalUnavailable] * 3
    assert "No space left on device" in str(appended[0])
    assert segment.stat().st_size == size + 10  # the short write's bytes
    # While the disk is full, the tail is restored but the next write fails again; then the attempts
    # wait (doubling): a write asked for meanwhile is refused at once.
    with pytest.raises(JournalUnavailable, match="No space left"):
        await journal.append("r", 1, b"still full")
    with pytest.raises(JournalUnavailable, match="refuses writes until it has restored its tail"):
        await journal.append("r", 1, b"refused")
    assert not journal.submit_then("r", 1, b"refused", handed.append)
    with pytest.raises(JournalUnavailable, match="refuses writes until it has restored its tail"):
        await journal.submit("r", 1, b"refused")
    assert [r.body for r in await journal.replay("r")] == [b"kept"]  # reads go on
    monkeypatch.setattr(os, "ftruncate", truncate)
    monkeypatch.undo()  # the disk has room again
    await asyncio.sleep(0.06)
    assert await journal.append("r", 1, b"next") == kept + 1
    assert "journal_recovered" in caplog.text and "dropped=10" in caplog.text  # the torn bytes cut away
    assert segment.stat().st_size > size
    assert await journal.append("s", 1, b"other room") == 1
    assert [(r.offset, r.body) for r in await journal.replay("r")] == [(kept, b"kept"), (kept + 1, b"next")]
    await journal.close()

    again = FileJournal(tmp_path)
    await again.open()
    try:
        assert [(r.offset, r.body) for r in await again.replay("r")] == [(kept, b"kept"), (kept + 1, b"next")]
        assert [r.body for r in await again.replay("s")] == [b"other room"]
        assert await again.rooms() == ["r", "s"]
        assert await again.append("r", 1, b"after") == kept + 2
    finally:
        await again.close()


async def test_a_failed_fsync_fails_its_group_and_those_queued_behind_it_and_the_next_write_recovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = FileJournal(tmp_path, FileJournalSettings(durability="full"))
    await journal.open()
    kept = await journal.append("r", 1, b"kept")
    await journal.save_snapshot("r", Snapshot(offset=kept, epoch=1, body=b"kept snapshot"))
    _failing_on(journal, "fdatasync", monkeypatch)
    first = asyncio.ensure_future(journal.append("r", 1, b"lost"))
    snapshot = asyncio.ensure_future(journal.save_snapshot("r", Snapshot(offset=kept + 1, epoch=1, body=b"lost")))
    await asyncio.sleep(0)  # written: its fdatasync runs, what follows queues up behind it
    behind = [asyncio.ensure_future(journal.append("r", 1, b"queued")) for _ in range(3)]
    outcomes = await asyncio.gather(first, snapshot, *behind, return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [JournalUnavailable] * 5
    assert "an fsync failed" in str(outcomes[0]) and "refuses writes" in str(outcomes[2])
    assert [r.body for r in await journal.replay("r")] == []
    assert (await journal.snapshot("r")) == Snapshot(offset=kept, epoch=1, body=b"kept snapshot")
    # The recovery's own fdatasync fails too: writes stay refused.
    with pytest.raises(JournalUnavailable):
        await journal.append("r", 1, b"x")
    monkeypatch.undo()
    await asyncio.sleep(0.06)
    assert await journal.append("r", 1, b"next") == kept + 1
    assert (await journal.snapshot("r")) == Snapshot(offset=kept, epoch=1, body=b"kept snapshot")
    await journal.close()
    again = FileJournal(tmp_path, FileJournalSettings(durability="full"))
    await again.open()
    try:
        assert [(r.offset, r.body) for r in await again.replay("r")] == [(kept + 1, b"next")]
        assert (await again.snapshot("r")) == Snapshot(offset=kept, epoch=1, body=b"kept snapshot")
        assert await again.append("r", 1, b"after") == kept + 2
    finally:
        await again.close()


async def test_a_segment_that_failed_to_start_is_removed_and_the_next_write_starts_it_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = FileJournal(tmp_path, FileJournalSettings(segment_bytes=4096))
    await journal.open()
    offsets = [await journal.append(f"r{n % 3}", 1, bytes(600)) for n in range(7)]
    real_write, real_unlink = os.write, os.unlink
    # The next segment's head is cut short by a full disk, and its removal fails too.
    monkeypatch.setattr(os, "write", lambda fd, data: (
        real_write(fd, data) if fd == journal._fd else _raise(OSError(errno.ENOSPC, "No space left on device"))))
    monkeypatch.setattr(os, "unlink", lambda path, *a, **k: _raise(OSError(errno.EIO, "I/O error")))
    with pytest.raises(JournalUnavailable, match="starting the next segment"):
        await journal.append("r0", 1, b"lost")
    assert len(list(tmp_path.glob("*.seg"))) == 2  # the partial one stayed
    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert await journal.append("r0", 1, b"next") == 4
    await journal.close()
    again = FileJournal(tmp_path, FileJournalSettings(segment_bytes=4096))
    await again.open()
    try:
        assert [r.offset for r in await again.replay("r0")] == [1, 2, 3, 4]
        assert [r.body for r in await again.replay("r0")][-1] == b"next"
        assert len(offsets) == 7
    finally:
        await again.close()


def _raise(exc: BaseException) -> Any:
    raise exc


async def test_submit_then_is_refused_while_every_slot_is_held_or_awaited_and_taken_again_after(
        tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, FileJournalSettings(max_pending=1))
    await journal.open()
    landed: list[int | Exception] = []
    held = asyncio.ensure_future(journal.append("r", 1, b"held"))
    waiting = asyncio.ensure_future(journal.append("r", 1, b"waits for a slot"))
    cancelled = asyncio.ensure_future(journal.append("r", 1, b"cancelled while it waits"))
    await asyncio.sleep(0)  # all three started: one holds the slot, two wait
    assert not journal.submit_then("r", 1, b"refused", landed.append)
    cancelled.cancel()
    assert await held == 1
    assert await waiting == 2
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert journal.submit_then("r", 1, b"taken", landed.append)  # no slot held or awaited any more
    await asyncio.sleep(0.05)
    assert landed == [3]
    await journal.close()


async def test_a_short_write_goes_on_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = FileJournal(tmp_path, FileJournalSettings())
    await journal.open()
    await journal.claim("r", 1)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    offsets = [await journal.append("r", 1, bytes([n]) * 100) for n in range(3)]
    monkeypatch.undo()
    await journal.close()
    reopened = FileJournal(tmp_path, FileJournalSettings())
    await reopened.open()
    assert [(record.offset, record.body) for record in await reopened.replay("r")] == [
        (offset, bytes([n]) * 100) for n, offset in enumerate(offsets)]
    await reopened.close()


# -- the index of a sealed segment (journal/logfile_index.py)


def _state(journal: FileJournal) -> tuple[dict[str, Any], dict[int, int]]:
    """What an open rebuilt: every room's state and the live frames per segment."""
    rooms = {name: (state.epoch, state.last, state.listed, state.forgotten_at, list(state.records), state.snapshot)
             for name, state in journal._rooms.items()}
    return rooms, {number: count for number, count in journal._segments.live.items() if count}


async def _reads(journal: FileJournal) -> dict[str, Any]:
    return {room: ([(r.offset, r.epoch, r.body) for r in await journal.replay(room)], await journal.snapshot(room))
            for room in list(journal._rooms)} | {"": await journal.rooms()}


async def _opened(path: Path, settings: FileJournalSettings) -> tuple[int, Any, dict[str, Any]]:
    journal = FileJournal(path, settings)
    await journal.open()
    try:
        return journal.indexed, _state(journal), await _reads(journal)
    finally:
        await journal.close()


async def _busy_history(journal: FileJournal, seed: int) -> None:
    """Records, snapshots, claims and forgets over a few rooms, enough to roll many small segments."""
    import random
    rng = random.Random(seed)
    epochs = {f"room{n}": max(1, journal._rooms[f"room{n}"].epoch if f"room{n}" in journal._rooms else 1)
              for n in range(6)}
    for step in range(1500):
        room = rng.choice(sorted(epochs))
        action = rng.random()
        if action < 0.85:
            offset = await journal.append(room, epochs[room], f"{room}:{step}".encode() * rng.randint(1, 8))
            if rng.random() < 0.05:
                await journal.save_snapshot(room, Snapshot(offset=offset, epoch=epochs[room], body=b"s%d" % step))
        elif action < 0.9:
            epochs[room] += 1
            await journal.claim(room, epochs[room])
        elif action < 0.93:
            await journal.forget(room)
        else:  # a loop turn of writes to every room: one group
            await asyncio.gather(*(journal.append(r, epochs[r], b"group") for r in epochs))


@pytest.mark.parametrize("keep_snapshotted", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
async def test_an_open_from_the_index_rebuilds_what_a_scan_of_every_segment_does(
        tmp_path: Path, seed: int, keep_snapshotted: bool) -> None:
    settings = FileJournalSettings(segment_bytes=4096, keep_snapshotted=keep_snapshotted)
    journal = FileJournal(tmp_path, settings)
    await journal.open()
    await _busy_history(journal, seed)
    before_close = _state(journal), await _reads(journal)
    await journal.close()
    assert len(list(tmp_path.glob("*.seg"))) > 2 and len(list(tmp_path.glob("*.idx"))) == 1

    indexed, state, reads = await _opened(tmp_path, settings)
    assert indexed == max(int(p.stem) for p in tmp_path.glob("*.seg")) - 1  # only the newest segment scanned
    assert (state, reads) == before_close
    for index in tmp_path.glob("*.idx"):
        index.unlink()
    scanned, state, reads = await _opened(tmp_path, settings)
    assert scanned == 0
    assert (state, reads) == before_close

    # And writes go on from either: the same offsets and epochs.
    journal = FileJournal(tmp_path, settings)
    await journal.open()
    await _busy_history(journal, seed + 10)
    await journal.close()
    with_index = await _opened(tmp_path, settings)
    for index in tmp_path.glob("*.idx"):
        index.unlink()
    without = await _opened(tmp_path, settings)
    assert with_index[0] and not without[0]
    assert with_index[1:] == without[1:]


async def test_a_torn_corrupt_or_stale_index_is_not_used_and_the_segments_are_scanned(tmp_path: Path) -> None:
    settings = FileJournalSettings(segment_bytes=4096)
    journal = FileJournal(tmp_path, settings)
    await journal.open()
    await _busy_history(journal, 3)
    expected = _state(journal), await _reads(journal)
    await journal.close()
    [index] = tmp_path.glob("*.idx")
    whole = index.read_bytes()
    cases = {
        "empty": b"",
        "torn": whole[: len(whole) // 2],
        "cut by a byte": whole[:-1],
        "a bit flipped": whole[:40] + bytes([whole[40] ^ 1]) + whole[41:],
        "no header": b"not an index at all",
    }
    for case, data in cases.items():
        index.write_bytes(data)
        indexed, state, reads = await _opened(tmp_path, settings)
        assert indexed == 0, case
        assert (state, reads) == expected, case
    # An index that does not match its segment any more (the segment grew after it was written).
    index.write_bytes(whole)
    sealed = tmp_path / f"{int(index.stem):012d}.seg"
    if sealed.exists():
        original = sealed.read_bytes()
        sealed.write_bytes(original + encode(Kind.CLAIM, b"room0", 99, 0, b""))
        indexed, _, _ = await _opened(tmp_path, settings)
        assert indexed == 0
        sealed.write_bytes(original)
    # A half-written one left by a kill (never renamed into place) is removed; the index is used.
    (tmp_path / f"{int(index.stem) + 1:012d}.idx.tmp").write_bytes(whole[:100])
    indexed, state, reads = await _opened(tmp_path, settings)
    assert indexed == int(index.stem)
    assert (state, reads) == expected
    assert not list(tmp_path.glob("*.idx.tmp"))


async def test_an_older_index_is_used_when_what_came_after_it_let_go_what_it_names_and_not_otherwise(
        tmp_path: Path) -> None:
    settings = FileJournalSettings(segment_bytes=4096)
    journal = FileJournal(tmp_path, settings)
    await journal.open()
    for _ in range(30):
        await journal.append("r", 1, bytes(300))
    await journal.replay("r")  # runs on the writer's thread after the index writes queued before it
    [index] = tmp_path.glob("*.idx")
    old_index, old_number = index.read_bytes(), int(index.stem)
    last = await journal.append("r", 1, b"last")
    await journal.save_snapshot("r", Snapshot(offset=last, epoch=1, body=b"snap"))  # r's records let go
    for _ in range(30):
        await journal.append("s", 1, bytes(300))
    await journal.replay("s")
    await journal.close()
    assert not (tmp_path / f"{old_number:012d}.seg").exists()  # deleted once the snapshot let it go
    for each in tmp_path.glob("*.idx"):
        each.unlink()
    (tmp_path / f"{old_number:012d}.idx").write_bytes(old_index)
    indexed, state, reads = await _opened(tmp_path, settings)
    assert indexed == old_number  # every place it names in a deleted segment is let go by what follows
    assert reads["r"] == ([], Snapshot(offset=last, epoch=1, body=b"snap"))
    (tmp_path / f"{old_number:012d}.idx").unlink()
    assert (state, reads) == (await _opened(tmp_path, settings))[1:]

    # An index naming a live record in a segment that is gone (removed by hand): not used.
    journal = FileJournal(tmp_path, settings)
    await journal.open()
    for _ in range(30):
        await journal.append("t", 1, bytes(300))
    await journal.replay("t")
    await journal.close()
    [index] = tmp_path.glob("*.idx")
    first_of_t = min(record[2] for record in await _records_of(tmp_path, settings, "t"))
    (tmp_path / f"{first_of_t:012d}.seg").unlink()
    indexed, state, reads = await _opened(tmp_path, settings)
    assert indexed == 0
    index.unlink()
    assert (state, reads) == (await _opened(tmp_path, settings))[1:]


async def _records_of(path: Path, settings: FileJournalSettings, room: str) -> list[Any]:
    journal = FileJournal(path, settings)
    await journal.open()
    try:
        return list(journal._rooms[room].records)
    finally:
        await journal.close()


async def test_a_kill_9_while_an_index_is_written_leaves_a_journal_that_opens_whole(tmp_path: Path) -> None:
    # Killed while an index is half-written (each is written in two halves 20 ms apart).
    printed = await appended_until_killed(tmp_path, "normal", "file-slow-index", lines=3000,
                                          # a whole index first, then a half one: a half one seen first could be
                                          # renamed whole before the second look (then neither is half)
                                          until=lambda: any(tmp_path.glob("*.idx")) and any(tmp_path.glob("*.idx.tmp")))
    assert any(tmp_path.glob("*.idx.tmp")), sorted(p.name for p in tmp_path.iterdir())
    settings = FileJournalSettings(segment_bytes=64 * 1024)
    indexed, state, reads = await _opened(tmp_path, settings)
    for index in tmp_path.glob("*.idx"):
        index.unlink()
    scanned, scanned_state, scanned_reads = await _opened(tmp_path, settings)
    assert scanned == 0 and indexed > 0
    assert (state, reads) == (scanned_state, scanned_reads)
    kept = {(room, offset, body) for room, read in reads.items() if room for offset, _, body in read[0]}
    assert not [line for line in printed if line not in kept]


async def test_an_index_that_cannot_be_written_is_logged_and_the_journal_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from journal import logfile_index

    def full_disk(*_: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logfile_index, "write_index", full_disk)
    settings = FileJournalSettings(segment_bytes=4096)
    journal = FileJournal(tmp_path, settings)
    await journal.open()
    offsets = [await journal.append("r", 1, bytes(300)) for _ in range(40)]
    assert [r.offset for r in await journal.replay("r")] == offsets
    await journal.close()
    assert "journal_index_not_written" in caplog.text and not list(tmp_path.glob("*.idx*"))
    indexed, _, reads = await _opened(tmp_path, settings)
    assert indexed == 0 and [offset for offset, _, _ in reads["r"][0]] == offsets
