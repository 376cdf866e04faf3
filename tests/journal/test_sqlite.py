"""The journal contract on :class:`journal.sqlite.SqliteJournal`, and what only a file on disk can
promise: records that survive a close, and a ``kill -9`` in the middle of appends."""

from __future__ import annotations

from pathlib import Path

import pytest

from journal.settings import JournalSettings
from journal.sqlite import SqliteJournal
from tests.journal.contract import JournalContract, MakeJournal


class TestSqliteJournal(JournalContract):
    @pytest.fixture
    def make(self, tmp_path: Path) -> MakeJournal:
        return lambda: SqliteJournal(tmp_path / "journal.sqlite3", JournalSettings())
