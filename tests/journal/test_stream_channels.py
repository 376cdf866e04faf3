"""StreamJournal on a real RabbitMQ node: look-ups the broker refuses (a snapshot of a room that has
none, a forget of a room that was never written) never cost the journal its connection, however many
run at once beside reads and writes.

The broker answers a passive declare of a missing stream by closing the channel; aiormq frees the
channel's number when it reads that close, before its close-ok is written, so a channel opened at the
same moment on the same connection can take the number and its channel.open can go out first, which
the broker answers by closing the whole connection (504 "second 'channel.open' seen")."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from journal.settings import StreamJournalSettings
from journal.stream import StreamJournal

pytestmark = [pytest.mark.amqp]


@pytest_asyncio.fixture
async def journal(broker_url: str) -> AsyncIterator[StreamJournal]:
    settings = StreamJournalSettings(prefix=f"t{uuid.uuid4().hex[:8]}.", room_max_bytes=5_000_000,
                                     room_segment_bytes=1_000_000, snapshot_max_bytes=200_000,
                                     snapshot_segment_bytes=100_000, rooms_max_bytes=1_000_000,
                                     rooms_segment_bytes=500_000)
    journal = StreamJournal(broker_url, settings, name="test-journal-channels")
    await journal.open()
    yield journal
    await journal.close()


async def test_many_refused_lookups_beside_reads_and_writes_keep_the_connection(journal: StreamJournal) -> None:
    # A controller taking over many rooms asks each for its newest snapshot; rooms that have not reached
    # snapshot_every have none.  Those look-ups run beside appends and replays on the same journal.
    writing = [f"w{i}" for i in range(4)]
    for room in writing:
        await journal.claim(room, 1)
    appended = 0

    async def write(room: str) -> None:
        nonlocal appended
        for _ in range(10):
            await journal.append(room, 1, b"x")
            appended += 1

    for batch in range(8):
        missing = [f"none{batch}.{i}" for i in range(25)]
        results = await asyncio.gather(
            *(journal.snapshot(room) for room in missing),
            *(journal.forget(room) for room in missing[:10]),  # exists() of a room with no stream
            *(write(room) for room in writing),
            *(journal.replay(room) for room in writing),
            return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"batch {batch}: {failures[:3]}"
        assert all(r is None for r in results[:25])
    assert journal.reconnects == 0
    assert appended == 8 * 4 * 10
    for room in writing:
        assert len(await journal.replay(room)) == 8 * 10
