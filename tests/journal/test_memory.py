"""The journal contract on :class:`journal.memory.MemoryJournal`."""

from __future__ import annotations

import pytest

from journal.memory import MemoryJournal
from tests.journal.contract import JournalContract, MakeJournal


class TestMemoryJournal(JournalContract):
    durable = False

    @pytest.fixture
    def make(self) -> MakeJournal:
        return MemoryJournal
