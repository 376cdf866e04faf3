"""The journal contract on :class:`journal.logfile.FileJournal`, and what only its files can promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from journal.logfile import FileJournal
from journal.settings import FileJournalSettings
from tests.journal.contract import JournalContract, MakeJournal


class TestFileJournal(JournalContract):
    exclusive = True

    @pytest.fixture
    def make(self, tmp_path: Path) -> MakeJournal:
        return lambda: FileJournal(tmp_path / "journal.d", FileJournalSettings())
