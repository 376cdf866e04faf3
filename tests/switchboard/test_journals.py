"""``journal.kind`` builds the journal it names: the append-only file journal (``file``) at its directory,
which takes over the rooms of the SQLite journal it replaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from journal import Fenced, JournalUnavailable, Snapshot
from journal.logfile import FileJournal
from journal.sqlite import SqliteJournal
from switchboard.config import load_settings
from switchboard.journals import build_journal, journal_kind, sqlite_path


def test_kind_file_builds_the_file_journal_in_its_directory_or_beside_the_key_state_file(tmp_path: Path) -> None:
    configured = build_journal(load_settings(env={"SWITCHBOARD_JOURNAL__KIND": "file",
                                                  "SWITCHBOARD_JOURNAL__FILE__PATH": str(tmp_path / "j"),
                                                  "SWITCHBOARD_JOURNAL__FILE__SEGMENT_BYTES": "8192"}), embedded=True)
    assert isinstance(configured, FileJournal)
    assert configured.path == tmp_path / "j" and configured.settings.segment_bytes == 8192
    default = build_journal(load_settings(env={"SWITCHBOARD_JOURNAL__KIND": "file",
                                               "SWITCHBOARD_KEYS__STATE_FILE": str(tmp_path / "state" / "keys.json")}),
                            embedded=True)
    assert isinstance(default, FileJournal) and default.path == tmp_path / "state" / "journal.d"


def test_kind_auto_is_the_file_journal_for_switchboard_up_and_takes_over_the_sqlite_journal_there(
        tmp_path: Path) -> None:
    env = {"SWITCHBOARD_KEYS__STATE_FILE": str(tmp_path / "keys.json")}
    embedded = build_journal(load_settings(env=env), embedded=True)
    assert isinstance(embedded, FileJournal)
    assert embedded.path == tmp_path / "journal.d" and embedded.import_from == tmp_path / "journal.sqlite3"
    configured = build_journal(load_settings(env=env | {"SWITCHBOARD_JOURNAL__SQLITE__PATH": str(tmp_path / "old.db")}),
                               embedded=True)
    assert isinstance(configured, FileJournal) and configured.import_from == tmp_path / "old.db"
    assert isinstance(build_journal(load_settings(env=env | {"SWITCHBOARD_JOURNAL__KIND": "sqlite"}), embedded=True),
                      SqliteJournal)
    # A controller process: the broker's streams when it has one, else SQLite (it may share the disk).
    assert isinstance(build_journal(load_settings(env=env), embedded=False), SqliteJournal)
    assert journal_kind(load_settings(env=env | {"SWITCHBOARD_RPC__BROKER_URL": "amqp://x"}), embedded=False) == "holder"


async def test_a_file_journal_opened_empty_takes_over_the_rooms_of_the_sqlite_journal_it_replaces(
        tmp_path: Path) -> None:
    # An embedded server whose journal was SQLite until its upgrade restart: nothing it held is lost.
    env = {"SWITCHBOARD_KEYS__STATE_FILE": str(tmp_path / "keys.json")}
    old = build_journal(load_settings(env=env | {"SWITCHBOARD_JOURNAL__KIND": "sqlite"}), embedded=True)
    assert isinstance(old, SqliteJournal)
    await old.open()
    await old.claim("big", 3)
    offsets = [await old.append("big", 3, f"e{i}".encode()) for i in range(5)]
    await old.save_snapshot("big", Snapshot(offset=offsets[2], epoch=3, body=b"state at 3"))
    await old.claim("quiet", 2)  # claimed, nothing written yet
    await old.claim("closed", 9)
    closed_last = await old.append("closed", 9, b"x")
    await old.forget("closed")
    await old.close()

    settings = load_settings(env=env | {"SWITCHBOARD_JOURNAL__KIND": "file"})
    new = build_journal(settings, embedded=True)
    assert isinstance(new, FileJournal)
    await new.open()
    try:
        assert await new.rooms() == ["big", "quiet"]
        assert await new.snapshot("big") == Snapshot(offset=offsets[2], epoch=3, body=b"state at 3")
        assert [(r.offset, r.epoch, r.body) for r in await new.replay("big", after=offsets[2])] == [
            (offsets[3], 3, b"e3"), (offsets[4], 3, b"e4")]
        with pytest.raises(Fenced):
            await new.append("big", 2, b"stale")
        with pytest.raises(Fenced):
            await new.claim("quiet", 2)
        with pytest.raises(Fenced):
            await new.claim("closed", 9)  # a forgotten room's epoch goes on
        assert await new.claim("closed", 10) == 0  # ... with a new history
        assert await new.append("closed", 10, b"y") == closed_last + 1
        assert await new.claim("big", 4) == offsets[-1]
        assert await new.append("big", 4, b"e5") == offsets[-1] + 1
    finally:
        await new.close()
    assert not sqlite_path(settings).exists()
    assert sqlite_path(settings).with_name("journal.sqlite3.migrated").exists()

    again = build_journal(settings, embedded=True)  # the next start: nothing imported again
    assert isinstance(again, FileJournal)
    await again.open()
    try:
        assert [r.body for r in await again.replay("big", after=offsets[2])] == [b"e3", b"e4", b"e5"]
        assert [r.body for r in await again.replay("closed")] == [b"y"]
    finally:
        await again.close()


async def test_an_import_that_fails_leaves_no_segment_and_the_sqlite_journal_in_place(tmp_path: Path) -> None:
    source = tmp_path / "journal.sqlite3"
    source.write_bytes(b"not a database" * 100)
    journal = FileJournal(tmp_path / "journal.d", import_from=source)
    with pytest.raises(JournalUnavailable, match="cannot import the SQLite journal"):
        await journal.open()
    assert source.exists() and list((tmp_path / "journal.d").glob("*.seg*")) == []


async def test_a_sqlite_journal_beside_a_file_journal_that_holds_rooms_is_left_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = FileJournal(tmp_path / "journal.d")
    await first.open()
    await first.append("mine", 1, b"kept")
    await first.close()
    sqlite = SqliteJournal(tmp_path / "journal.sqlite3")
    await sqlite.open()
    await sqlite.append("theirs", 1, b"not taken")
    await sqlite.close()

    journal = FileJournal(tmp_path / "journal.d", import_from=tmp_path / "journal.sqlite3")
    await journal.open()
    try:
        assert await journal.rooms() == ["mine"]
    finally:
        await journal.close()
    assert (tmp_path / "journal.sqlite3").exists()
    assert "journal_sqlite_not_imported" in caplog.text
