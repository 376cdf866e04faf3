"""StreamJournal on a real RabbitMQ node: the journal contract, a second controller on the same broker,
fencing of a stale epoch on replay, a broker restart, and a broker that is down.

No assertion reads a clock; waits go through the journal's own bounded timeouts or ``wait_until``."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from typing import cast

import aio_pika
import aiormq
import pytest
import pytest_asyncio
import yarl
from pamqp.commands import Basic

from journal.base import Fenced, Journal, JournalUnavailable, Snapshot
from journal.stream import StreamJournal
from journal.stream_publish import BatchPublisher
from journal.settings import StreamJournalSettings
from switchboard.devbroker import RabbitNode
from tests.journal.contract import JournalContract
from tests.journal.contract import MakeJournal as ContractMake
from tests.support.processes import free_port
from tests.support.tcp_cut import CutProxy
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp]

MakeJournal = Callable[..., Awaitable[StreamJournal]]


def _settings(prefix: str, **overrides: object) -> StreamJournalSettings:
    # small streams: tests make many
    base: dict[str, object] = {"prefix": prefix, "room_max_bytes": 5_000_000, "room_segment_bytes": 1_000_000,
                               "snapshot_max_bytes": 200_000, "snapshot_segment_bytes": 100_000,
                               "rooms_max_bytes": 1_000_000, "rooms_segment_bytes": 500_000}
    base.update(overrides)
    return StreamJournalSettings(**base)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def make_journal(broker_url: str) -> AsyncIterator[MakeJournal]:
    """Opened journals on the session broker sharing one fresh prefix (so they see each other's
    streams and no other test's); all closed at the end."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    made: list[StreamJournal] = []

    async def make(url: str = broker_url, **overrides: object) -> StreamJournal:
        journal = StreamJournal(url, _settings(prefix, **overrides), name=f"test-journal-{len(made)}")
        made.append(journal)
        await journal.open()
        return journal

    yield make
    for journal in made:
        await journal.close()


@pytest_asyncio.fixture
async def journal(make_journal: MakeJournal) -> StreamJournal:
    return await make_journal()


# -- the contract -----------------------------------------------------------------------------------

@pytest_asyncio.fixture
async def made_journals() -> AsyncIterator[list[StreamJournal]]:
    """Journals a test made; any it left open (a failing test) are closed at the end."""
    made: list[StreamJournal] = []
    yield made
    for journal in made:
        await journal.close()


class TestStreamJournal(JournalContract):
    @pytest.fixture
    def make(self, broker_url: str, made_journals: list[StreamJournal]) -> ContractMake:
        """Journals over the same fresh prefix on the session broker: a second one sees what the first wrote."""
        prefix = f"c{uuid.uuid4().hex[:8]}."

        def make() -> Journal:
            made_journals.append(StreamJournal(broker_url, _settings(prefix), name=f"contract-{len(made_journals)}"))
            return made_journals[-1]

        return make


# -- StreamJournal's own ---------------------------------------------------------------------------------

async def test_concurrent_appends_each_get_their_own_offset_in_replay_order(journal: StreamJournal) -> None:
    await journal.claim("r", 1)
    offsets = await asyncio.gather(*(journal.append("r", 1, str(i).encode()) for i in range(50)))
    assert len(set(offsets)) == 50
    records = await journal.replay("r")
    assert [r.offset for r in records] == sorted(offsets)
    by_offset = dict(zip(offsets, range(50)))
    assert [r.body for r in records] == [str(by_offset[r.offset]).encode() for r in records]


async def test_rooms_lists_rooms_with_history_until_they_are_forgotten(journal: StreamJournal) -> None:
    await journal.claim("a", 1)
    await journal.claim("b", 1)
    await journal.append("b", 1, b"x")
    assert sorted(await journal.rooms()) == ["a", "b"]
    await journal.save_snapshot("b", Snapshot(offset=1, epoch=1, body=b"s"))
    await journal.forget("b")
    assert await journal.rooms() == ["a"]
    assert await journal.replay("b") == []
    assert await journal.snapshot("b") is None
    # opened again: a new history, its epoch going on from where it was
    assert await journal.claim("b", 2) == 0
    offset = await journal.append("b", 2, b"new")
    assert [(r.offset, r.body) for r in await journal.replay("b")] == [(offset, b"new")]
    assert sorted(await journal.rooms()) == ["a", "b"]


def test_settings_refuse_unbounded_or_inconsistent_values() -> None:
    with pytest.raises(ValueError, match="append_timeout"):
        StreamJournalSettings(append_timeout=0)
    with pytest.raises(ValueError, match="ack_every"):
        StreamJournalSettings(prefetch=100, ack_every=60)
    with pytest.raises(ValueError, match="max_followed_rooms"):
        StreamJournalSettings(max_followed_rooms=5000)
    with pytest.raises(ValueError, match="room_segment_bytes"):
        StreamJournalSettings(room_max_bytes=1000, room_segment_bytes=2000)


async def test_a_journal_follows_a_bounded_number_of_rooms(make_journal: MakeJournal) -> None:
    journal = await make_journal(max_followed_rooms=2)
    offsets = {}
    for room in ("a", "b", "c"):
        await journal.claim(room, 1)
        offsets[room] = await journal.append(room, 1, room.encode())
    assert sorted(journal._tails.followed()) == ["b", "c"]
    # a room let go is followed again from where it is: epochs and offsets go on
    with pytest.raises(Fenced):
        await journal.append("a", 0, b"stale")
    assert await journal.append("a", 1, b"again") > offsets["a"]
    assert sorted(journal._tails.followed()) == ["a", "c"]
    assert [r.body for r in await journal.replay("a")] == [b"a", b"again"]


async def test_a_journal_with_other_stream_sizes_is_told_so_at_once(make_journal: MakeJournal) -> None:
    first = await make_journal()
    await first.claim("r", 1)
    other = await make_journal(room_max_bytes=6_000_000, attach_timeout=300.0)
    with pytest.raises(JournalUnavailable, match="inequivalent arg 'x-max-length-bytes'"):
        await other.append("r", 1, b"x")


# -- a second controller on the same broker -------------------------------------------------------

async def test_a_second_journal_sees_the_first_ones_records_and_takes_the_room_over(make_journal: MakeJournal) -> None:
    old, new = await make_journal(), await make_journal()
    await old.claim("r", 1)
    written = [await old.append("r", 1, f"old{i}".encode()) for i in range(3)]
    assert [r.offset for r in await new.replay("r")] == written

    assert await new.claim("r", 2) == written[-1]
    with pytest.raises(Fenced) as info:
        await old.append("r", 1, b"too late")
    assert info.value.current == 2
    mine = await new.append("r", 2, b"new0")
    assert [r.body for r in await old.replay("r")] == [b"old0", b"old1", b"old2", b"new0"]
    assert (await old.replay("r"))[-1].offset == mine
    assert sorted(await old.rooms()) == ["r"]


# -- fencing on replay ------------------------------------------------------------------------------

async def _publish_raw(url: str, queue: str, kind: str, epoch: int, body: bytes) -> None:
    """What a stale writer whose tail lagged puts in the stream: a record the broker cannot refuse."""
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(body, headers={"k": kind, "e": epoch}, message_id=uuid.uuid4().hex), routing_key=queue)
    finally:
        await conn.close()


async def test_replay_skips_records_of_an_older_epoch_that_follow_a_newer_claim(
        make_journal: MakeJournal, broker_url: str) -> None:
    old, new = await make_journal(), await make_journal()
    await old.claim("r", 1)
    before = await old.append("r", 1, b"before the takeover")
    await new.claim("r", 2)
    queue = f"{new.settings.prefix}room.r"
    await _publish_raw(broker_url, queue, "record", 1, b"stale")
    after = await new.append("r", 2, b"after the takeover")
    await _publish_raw(broker_url, queue, "record", 1, b"stale again")

    for reader in (old, new):
        records = await reader.replay("r")
        assert [(r.epoch, r.body) for r in records] == [(1, b"before the takeover"), (2, b"after the takeover")]
        assert [r.offset for r in records] == [before, after]
    # a replay that starts after the newer claim still knows the epoch in force there
    assert [r.body for r in await new.replay("r", after=after)] == []
    # and the stale writer learns it is fenced, before or after writing
    with pytest.raises(Fenced):
        await old.append("r", 1, b"stale from the journal")
    assert await new.claim("r", 3) == after


async def test_an_append_that_lands_after_a_newer_claim_raises_fenced(
        make_journal: MakeJournal, broker_url: str) -> None:
    old = await make_journal()
    await old.claim("r", 1)
    # the newer claim lands without the old journal having seen it before it appends
    await _publish_raw(broker_url, f"{old.settings.prefix}room.r", "claim", 2, b"")
    with pytest.raises(Fenced) as info:
        await old.append("r", 1, b"raced")
    assert info.value.current == 2
    assert await old.replay("r") == []


async def test_submit_keeps_the_order_and_the_bound_and_a_record_after_a_newer_claim_is_refused(
        make_journal: MakeJournal, broker_url: str) -> None:
    journal = await make_journal(max_in_flight=3)
    await journal.claim("r", 1)
    futures = [journal.submit("r", 1, f"{n}".encode()) for n in range(8)]
    assert journal._writes.count == 3  # three published at once, the rest wait for a slot
    offsets = [await future for future in futures]
    assert offsets == sorted(offsets) and len(set(offsets)) == 8
    assert [r.body for r in await journal.replay("r")] == [f"{n}".encode() for n in range(8)]
    # a newer claim lands (confirmed) while this journal's loop is blocked, so its tail has not seen it:
    # the records submitted now pass the journal's own check, land after the claim, and are refused
    claim = threading.Thread(target=asyncio.run, args=(
        _publish_raw(broker_url, f"{journal.settings.prefix}room.r", "claim", 2, b""),))
    claim.start()
    claim.join()
    tail = journal._tails.get("r")
    assert tail is not None and tail.fold.epoch == 1
    stale = [journal.submit("r", 1, b"stale") for _ in range(3)]
    for future in stale:
        with pytest.raises(Fenced) as info:
            await future
        assert info.value.current == 2
    assert [r.offset for r in await journal.replay("r")] == offsets
    assert journal._writes.count == 0 and not tail.waiting


async def test_records_submitted_before_the_room_is_followed_or_while_no_slot_is_free_land_in_submit_order(
        make_journal: MakeJournal) -> None:
    journal = await make_journal(max_in_flight=2)
    # the room is not followed yet: these wait for its tail and its rooms entry, then for slots
    first = [journal.submit("r", 1, f"{n}".encode()) for n in range(6)]
    await first[0]
    # a slot is free again while the room's earlier records still wait: these go behind them
    later = [journal.submit("r", 1, f"{n}".encode()) for n in range(6, 12)]
    offsets = [await future for future in first + later]
    assert offsets == sorted(offsets)
    assert [r.body for r in await journal.replay("r")] == [f"{n}".encode() for n in range(12)]
    assert journal._writes.count == 0 and journal._writer.queued_rooms == 0


async def test_a_batch_goes_out_in_order_each_message_confirmed_or_returned_on_its_own(broker_url: str) -> None:
    conn = await aio_pika.connect(broker_url)
    try:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        prefix = f"b{uuid.uuid4().hex[:8]}."
        for name in ("x", "y"):
            await channel.declare_queue(prefix + name, durable=True, arguments={"x-queue-type": "stream"})
        writer = BatchPublisher(cast(aiormq.Channel, await (await conn.channel(
            publisher_confirms=True, on_return_raises=True)).get_underlay_channel()))
        big = b"z" * (writer.channel.max_content_size * 2 + 5)  # three body frames
        bodies = [b"1", b"", big, b"3", b"4"]
        queues = ["x", "y", "x", "missing", "y"]
        ids = [uuid.uuid4().hex for _ in bodies]
        futures = writer.publish([(prefix + queue, body, Basic.Properties(message_id=message_id, delivery_mode=2))
                                  for queue, body, message_id in zip(queues, bodies, ids)])
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert [isinstance(r, aiormq.exceptions.PublishError) for r in results] == [False, False, False, True, False]
        assert writer.channel.message_id_delivery_tag == {}
        for name, want in (("x", [(ids[0], b"1"), (ids[2], big)]), ("y", [(ids[1], b""), (ids[4], b"4")])):
            read = await channel.declare_queue(prefix + name, passive=True)
            await channel.set_qos(prefetch_count=10)
            got: list[tuple[str | None, bytes]] = []
            await read.consume(partial(_collect, got), arguments={"x-stream-offset": "first"})
            await wait_until(lambda: len(got) == 2, what=f"stream {name} read back")
            assert got == want
    finally:
        await conn.close()


async def _collect(into: list[tuple[str | None, bytes]], message: aio_pika.abc.AbstractIncomingMessage) -> None:
    into.append((message.message_id, message.body))
    await message.ack()


# -- the broker going away ----------------------------------------------------------------------------

@pytest.mark.slow
async def test_replay_and_appends_work_after_a_broker_restart(own_rabbit: RabbitNode, make_journal: MakeJournal) -> None:
    journal = await make_journal(own_rabbit.url, heartbeat=2, attach_timeout=60.0, read_timeout=90.0,
                                 append_timeout=90.0)
    other = await make_journal(own_rabbit.url, heartbeat=2, attach_timeout=60.0, read_timeout=90.0)
    await journal.claim("r", 1)
    before = [await journal.append("r", 1, f"b{i}".encode()) for i in range(20)]
    await journal.save_snapshot("r", Snapshot(offset=before[9], epoch=1, body=b"half"))

    await asyncio.to_thread(own_rabbit.ctl, "stop_app")
    with pytest.raises(JournalUnavailable):
        await journal.append("r", 1, b"while down")
    await asyncio.to_thread(own_rabbit.ctl, "start_app")

    async def replayed() -> list[bytes] | None:
        try:
            return [r.body for r in await other.replay("r")]
        except JournalUnavailable:
            return None

    bodies = await wait_until(replayed, timeout=60, interval=0.5, what="a replay after the restart")
    assert bodies == [f"b{i}".encode() for i in range(20)]
    assert await other.snapshot("r") == Snapshot(offset=before[9], epoch=1, body=b"half")
    # the writer's tail resumes where it was: new offsets go on, nothing is seen twice
    later = await journal.append("r", 1, b"after")
    assert later > before[-1]
    assert [r.offset for r in await other.replay("r")] == [*before, later]
    assert journal.reconnects >= 1


async def test_a_dropped_connection_fails_what_waits_on_it_and_the_next_append_reconnects(
        own_rabbit: RabbitNode, make_journal: MakeJournal) -> None:
    journal = await make_journal(own_rabbit.url)
    await journal.claim("r", 1)
    first = await journal.append("r", 1, b"before")
    await asyncio.to_thread(own_rabbit.ctl, "close_all_connections", "test")
    await wait_until(lambda: journal._link.conn is None, what="the journal to see its connection go")
    # the tail resumes after the last record it handled: nothing seen twice, nothing skipped
    second = await journal.append("r", 1, b"after")
    assert second > first
    assert [(r.offset, r.body) for r in await journal.replay("r")] == [(first, b"before"), (second, b"after")]
    assert journal.reconnects == 1


async def test_writes_a_connection_leaves_unanswered_make_the_journal_leave_it_for_the_next_node(
        broker_url: str, make_journal: MakeJournal) -> None:
    # The journal's first address goes through a proxy that will black-hole its traffic (the
    # connection stays open: no close, no heartbeat loss within the test); the second is the broker.
    proxy = CutProxy(free_port(), int(yarl.URL(broker_url).port or 5672))
    await proxy.start()
    try:
        journal = await make_journal(f"amqp://guest:guest@127.0.0.1:{proxy.listen_port}/,{broker_url}",
                                     append_timeout=1.0, heartbeat=60)
        await journal.claim("r", 1)
        first = await journal.append("r", 1, b"before")
        proxy.stall()
        with pytest.raises(JournalUnavailable, match="not done within 1.0 s"):
            await journal.append("r", 1, b"lost")  # neither confirmed nor read back
        # the stalled connection was left: the next append goes to the next address and lands
        second = await journal.append("r", 1, b"after")
        assert journal.reconnects == 1
        assert [r.body for r in await journal.replay("r")][0] == b"before" and second > first
        assert [r.body for r in await journal.replay("r")][-1] == b"after"
    finally:
        await proxy.stop()


async def test_a_write_left_without_confirm_or_read_back_for_stall_timeout_makes_the_journal_leave_its_node(
        broker_url: str, make_journal: MakeJournal) -> None:
    # As above, but told by stall_timeout, long before append_timeout: the room's writes got neither
    # a confirm nor a read-back for that long.
    proxy = CutProxy(free_port(), int(yarl.URL(broker_url).port or 5672))
    await proxy.start()
    try:
        journal = await make_journal(f"amqp://guest:guest@127.0.0.1:{proxy.listen_port}/,{broker_url}",
                                     append_timeout=60.0, stall_timeout=0.3, heartbeat=60)
        await journal.claim("r", 1)
        first = await journal.append("r", 1, b"before")
        proxy.stall()
        with pytest.raises(JournalUnavailable, match="no confirm or read-back of a write to r within 0.3 s"):
            await journal.append("r", 1, b"lost")
        second = await journal.append("r", 1, b"after")
        assert journal.reconnects == 1 and second > first
        assert [r.body for r in await journal.replay("r")] == [b"before", b"after"]
    finally:
        await proxy.stop()


async def test_a_journal_whose_broker_is_down_says_so(own_rabbit: RabbitNode) -> None:
    own_rabbit.stop()
    journal = StreamJournal(own_rabbit.url, _settings("down.", connect_timeout=5.0))
    with pytest.raises(JournalUnavailable) as info:
        await journal.open()
    assert "cannot connect to RabbitMQ at 127.0.0.1:" in str(info.value)
    with pytest.raises(JournalUnavailable):
        await journal.replay("r")
    await journal.close()


async def test_a_claim_after_a_replay_sees_what_was_written_between_the_two(make_journal: MakeJournal) -> None:
    # A takeover replays the room, then claims it; its journal follows the room from where the replay
    # ended, so the claim reads nothing twice yet misses nothing written in between.
    old, new = await make_journal(), await make_journal()
    await old.claim("r", 1)
    await old.append("r", 1, b"replayed")
    assert [r.body for r in await new.replay("r")] == [b"replayed"]
    between = await old.append("r", 1, b"written between the replay and the claim")
    assert await new.claim("r", 2) == between  # the last record before the claim
    assert [r.body for r in await new.replay("r")] == [b"replayed", b"written between the replay and the claim"]


async def test_a_claim_after_a_replay_is_fenced_by_a_claim_made_in_between(make_journal: MakeJournal) -> None:
    old, new = await make_journal(), await make_journal()
    await old.claim("r", 1)
    await old.append("r", 1, b"replayed")
    await new.replay("r")
    await old.claim("r", 5)
    with pytest.raises(Fenced) as fenced:
        await new.claim("r", 2)
    assert fenced.value.current == 5
    assert await new.claim("r", 6) > 0


async def test_reads_ending_in_a_busy_stream_keep_the_connection(make_journal: MakeJournal) -> None:
    # A read ends at its marker while another journal goes on writing to the stream: what is delivered
    # after the marker must not be acked on the channel being closed (the broker would close the whole
    # connection: 504), so the reader's connection stays up and every write of the writer lands.
    big = {"room_max_bytes": 200_000_000, "room_segment_bytes": 50_000_000}  # nothing dropped by retention
    writer, reader = await make_journal(**big), await make_journal(**big)
    await writer.claim("r", 1)
    await writer.append("r", 1, b"first")
    stop = asyncio.Event()

    async def write() -> int:
        written = 1
        while not stop.is_set():
            written += len(await asyncio.gather(*(writer.append("r", 1, bytes(100)) for _ in range(200))))
        return written

    writing = asyncio.create_task(write())
    try:
        for _ in range(6):
            await asyncio.sleep(0.05)
            assert await reader.replay("r")  # ends at its marker, the writer's records still coming
    finally:
        stop.set()
        written = await writing
    assert reader.reconnects == 0 and writer.reconnects == 0
    assert len(await reader.replay("r")) == written
