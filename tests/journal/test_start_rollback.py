"""A journal whose open fails leaves nothing open: no broker connection, no thread, no file handle."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from journal.base import JournalUnavailable
from journal.settings import StreamJournalSettings
from journal.sqlite import SqliteJournal
from journal.stream import StreamJournal
from journal.stream_connection import Connection
from switchboard.devbroker import RabbitNode
from tests.support.waiting import wait_until


async def _no_connection_named(rabbit: RabbitNode, name: str) -> bool:
    listed = await asyncio.to_thread(rabbit.ctl, "list_connections", "client_properties")
    return name not in listed


@pytest.mark.amqp
async def test_a_stream_journal_refused_a_channel_closes_its_connection(
    rabbit: RabbitNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(conn: object) -> object:
        raise ConnectionError("the test's broker refuses a channel")

    monkeypatch.setattr(Connection, "_open_writer", staticmethod(refused))
    name = f"rollback-journal-{uuid.uuid4().hex[:6]}"
    journal = StreamJournal(rabbit.url, StreamJournalSettings(prefix=f"t{uuid.uuid4().hex[:8]}."), name=name)
    with pytest.raises(JournalUnavailable, match="refused a channel"):
        await journal.open()
    await wait_until(lambda: _no_connection_named(rabbit, name), timeout=30, what="the connection to close")
    await journal.close()
    with pytest.raises(RuntimeError, match="was closed; make a new one"):
        await journal.open()


def _journal_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("journal-")]


async def test_a_sqlite_journal_whose_reader_cannot_open_closes_its_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SqliteJournal(tmp_path / "journal.sqlite3")
    opened: list[sqlite3.Connection] = []
    connect = journal._connect

    def reader_refused(writer: bool) -> sqlite3.Connection:
        if not writer:
            raise sqlite3.OperationalError("the test's reader cannot open")
        opened.append(connect(writer))
        return opened[-1]

    monkeypatch.setattr(journal, "_connect", reader_refused)
    with pytest.raises(JournalUnavailable, match="the test's reader cannot open"):
        await journal.open()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")
    await wait_until(lambda: _journal_threads() == [], what="the journal's threads to end")
