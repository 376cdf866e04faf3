"""The journal contract on :class:`journal.logfile.FileJournal`, and what only its files can promise."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from journal import Fenced, JournalUnavailable, Snapshot
from journal.logfile import FileJournal
from journal.logfile_frames import HEAD_SIZE, Kind, encode
from journal.settings import FileJournalSettings
from tests.journal.contract import JournalContract, MakeJournal


class TestFileJournal(JournalContract):
    exclusive = True

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
