"""The controller with the holder journal on a real RabbitMQ node: a quiet room in a busy holder stream gets a
snapshot the journal asks for (its own record count would never make one due), and its takeover's replay
reads a bounded part of the holder stream."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from journal.holder import HolderJournal
from journal.settings import StreamJournalSettings
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env

pytestmark = [pytest.mark.amqp]

AFTER = 100  # journal.stream.holder_snapshot_after
BUSY = 500  # holder messages the journal's other room writes while the room is quiet


def _settings(prefix: str) -> StreamJournalSettings:
    return StreamJournalSettings(prefix=prefix, holder_snapshot_after=AFTER, room_max_bytes=5_000_000,
                                 room_segment_bytes=1_000_000, snapshot_max_bytes=200_000,
                                 snapshot_segment_bytes=100_000, rooms_max_bytes=1_000_000,
                                 rooms_segment_bytes=500_000)


async def test_a_quiet_room_in_a_busy_holder_stream_is_snapshotted_and_its_takeover_reads_little(
        local: TransportFactory, make_env: Any, broker_url: str) -> None:
    settings = _settings(f"cq{uuid.uuid4().hex[:8]}.")
    journal = HolderJournal(broker_url, settings, name="first")
    taker = HolderJournal(broker_url, settings, name="taker")
    await journal.open()
    await taker.open()
    try:
        env: Env = await make_env(local, journal=journal, reconnection_timeout=30.0)  # snapshot_every 1,000
        await env.join("p1")
        await env.join("p2", portal=env.portal_b)
        await env.call("text", participant="p1", to="all", message="before the quiet")
        room = env.controller.room("room-1")
        await wait_until(lambda: not room.pending, what="the room's records durable")
        quiet_since = room.last_offset
        assert await journal.snapshot("room-1") is None
        # the room says nothing more; another room of the same journal keeps the holder stream busy
        await journal.claim("busy", 1)
        for n in range(BUSY):
            await journal.append("busy", 1, f"busy {n}".encode())
        await wait_until(lambda: journal.snapshots_told_due >= BUSY // AFTER - 1, what="snapshots asked for")
        snapshot = await wait_until(lambda: journal.snapshot("room-1"), what="a snapshot of the quiet room")
        assert room.last_offset == quiet_since  # it wrote nothing: the snapshot is of the same state ...
        assert snapshot.offset > quiet_since  # ... kept further on in the holder stream
        await wait_until(lambda: not env.controller._asked, what="the snapshots saved")
        before = msgspec.to_builtins(room.state.participants)

        await env.controller.stop()  # gone; another controller (another journal) takes the room over
        env.controller = await env.start_controller("controller-2", journal=taker)
        await env.call("take_over", room="room-1")
        rebuilt = msgspec.to_builtins(env.controller.room("room-1").state.participants)
        for participant in rebuilt.values():  # held until resumed, deadlines restarted: the rest is as it was
            participant.update(connected=True, hold_deadline=None)
        assert rebuilt == before
        # its replay read from its last snapshot on, not from its last record: about AFTER messages at most
        assert 0 < taker.replay_reads <= 2 * AFTER, taker.replay_reads
    finally:
        await journal.close()
        await taker.close()
