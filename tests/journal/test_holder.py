"""HolderJournal on a real RabbitMQ node: the journal contract, fencing across holder streams (a live
old holder, and a SIGSTOP'd holder process), and group commit (many rooms' records in one message).

No assertion reads a clock; waits go through the journal's own bounded timeouts or ``wait_until``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from journal.base import Fenced, Journal
from journal.holder import HolderJournal
from journal.settings import StreamJournalSettings
from tests.journal.contract import JournalContract
from tests.journal.contract import MakeJournal as ContractMake

pytestmark = [pytest.mark.amqp]

MakeJournal = Callable[..., Awaitable[HolderJournal]]


def _settings(prefix: str, **overrides: object) -> StreamJournalSettings:
    # small streams: tests make many
    base: dict[str, object] = {"prefix": prefix, "room_max_bytes": 5_000_000, "room_segment_bytes": 1_000_000,
                               "snapshot_max_bytes": 200_000, "snapshot_segment_bytes": 100_000,
                               "rooms_max_bytes": 1_000_000, "rooms_segment_bytes": 500_000}
    base.update(overrides)
    return StreamJournalSettings(**base)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def made_journals() -> AsyncIterator[list[HolderJournal]]:
    """Journals a test made; any it left open (a failing test) are closed at the end."""
    made: list[HolderJournal] = []
    yield made
    for journal in made:
        await journal.close()


@pytest_asyncio.fixture
async def make_journal(broker_url: str, made_journals: list[HolderJournal]) -> MakeJournal:
    """Opened journals on the session broker sharing one fresh prefix."""
    prefix = f"h{uuid.uuid4().hex[:8]}."

    async def make(**overrides: object) -> HolderJournal:
        journal = HolderJournal(broker_url, _settings(prefix, **overrides), name=f"holder-{len(made_journals)}")
        made_journals.append(journal)
        await journal.open()
        return journal

    return make


class TestHolderJournal(JournalContract):
    @pytest.fixture
    def make(self, broker_url: str, made_journals: list[HolderJournal]) -> ContractMake:
        """Journals over the same fresh prefix on the session broker: a second one sees what the first wrote."""
        prefix = f"c{uuid.uuid4().hex[:8]}."

        def make() -> Journal:
            made_journals.append(HolderJournal(broker_url, _settings(prefix), name=f"contract-{len(made_journals)}"))
            return made_journals[-1]

        return make
