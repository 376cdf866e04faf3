"""InFlight, the stream journal's writes in flight: done once confirmed and seen (either order), the
fencing outcome of a record, the bound on writes in flight and the deadline of each."""

from __future__ import annotations

import asyncio

import pytest

from journal.base import Fenced, JournalUnavailable
from journal.stream_appends import InFlight, Seen, Write
from tests.support.fake_clock import FakeClock


def _waiting() -> dict[str, Write]:
    return {}


def _start(writes: InFlight, waiting: dict[str, Write], message_id: str, record: bool = True) -> Write:
    return writes.start("r", "record", 3, message_id, waiting, record)


async def test_a_write_is_done_once_confirmed_and_seen_in_either_order() -> None:
    writes, waiting = InFlight(limit=10, timeout=60), _waiting()
    first, second = _start(writes, waiting, "a"), _start(writes, waiting, "b", record=False)
    writes.confirmed(first)
    writes.seen(second, Seen(offset=8, counts=True, epoch=3, last_before=7))
    assert not first.future.done() and not second.future.done()
    writes.seen(first, Seen(offset=7, counts=True, epoch=3, last_before=5))
    writes.confirmed(second)
    assert await first.future == 7
    assert await second.future == Seen(offset=8, counts=True, epoch=3, last_before=7)
    assert waiting == {} and writes.count == 0


async def test_a_record_the_fencing_rule_does_not_count_raises_fenced() -> None:
    writes, waiting = InFlight(limit=10, timeout=60), _waiting()
    write = _start(writes, waiting, "a")
    writes.seen(write, Seen(offset=9, counts=False, epoch=4, last_before=5))
    writes.confirmed(write)
    with pytest.raises(Fenced) as info:
        await write.future
    assert (info.value.epoch, info.value.current) == (3, 4)


async def test_a_write_neither_confirmed_nor_seen_fails_at_its_deadline_and_frees_its_slot() -> None:
    writes, waiting = InFlight(limit=1, timeout=0.01), _waiting()
    write = _start(writes, waiting, "a")
    with pytest.raises(JournalUnavailable, match="not done within"):
        await write.future
    assert waiting == {} and writes.count == 0 and not writes.full


async def test_a_caller_waits_for_a_slot_while_the_writes_in_flight_are_at_the_bound() -> None:
    writes, waiting = InFlight(limit=2, timeout=60), _waiting()
    first, _ = _start(writes, waiting, "a"), _start(writes, waiting, "b")
    assert writes.full
    taking = asyncio.ensure_future(writes.take())
    await asyncio.sleep(0)
    assert not taking.done()
    writes.fail(first, JournalUnavailable("lost"))
    assert writes.full  # the freed slot is the waiting caller's: no newcomer takes it first
    await taking
    assert writes.count == 2
    with pytest.raises(JournalUnavailable):
        await first.future


async def test_closing_fails_every_write_and_every_caller_waiting_for_a_slot() -> None:
    writes, waiting = InFlight(limit=1, timeout=60), _waiting()
    write = _start(writes, waiting, "a")
    taking = asyncio.ensure_future(writes.take())
    await asyncio.sleep(0)
    writes.close(JournalUnavailable("journal is closed"))
    for pending in (write.future, taking):
        with pytest.raises(JournalUnavailable, match="closed"):
            await pending


async def test_a_write_without_a_confirm_or_read_back_stalls_unless_its_room_got_one_meanwhile() -> None:
    clock = FakeClock()
    writes, waiting = InFlight(limit=10, timeout=60, stall_timeout=5, clock=clock), _waiting()
    first, second = _start(writes, waiting, "a"), _start(writes, waiting, "b")
    other = writes.start("s", "record", 3, "c", {}, True)
    assert writes.stalled(clock.now + 4.9) == ([], clock.now + 5)
    clock.advance(4)
    writes.confirmed(first)
    writes.seen(first, Seen(offset=1, counts=True, epoch=3, last_before=0))
    # at 5 s: room r's last write was confirmed and read back a second ago, its second write is slow,
    # not stalled (yet); room s got nothing since its write started
    assert writes.stalled(clock.now + 1) == (["s"], clock.now + 5)
    assert writes.stalled(clock.now + 5) == (["r", "s"], None)
    writes.confirmed(second)  # confirmed now, never read back: stalled once the bound has passed
    clock.advance(5)
    assert writes.stalled(clock.now)[0] == ["r", "s"]
    writes.seen(second, Seen(offset=2, counts=True, epoch=3, last_before=1))
    writes.fail(other, JournalUnavailable("left"))
    assert writes.stalled(clock.now + 60) == ([], None) and waiting == {}


async def test_a_stalled_write_is_reported_and_what_the_callback_fails_is_done() -> None:
    reported: list[list[str]] = []
    waiting = _waiting()

    def leave(rooms: list[str]) -> None:  # as the journal does: leave the link, which fails its writes
        reported.append(rooms)
        writes.fail_all(waiting, JournalUnavailable("left the stuck connection"))

    writes = InFlight(limit=10, timeout=60, stall_timeout=0.02, on_stalled=leave)
    write = _start(writes, waiting, "a")
    with pytest.raises(JournalUnavailable, match="stuck"):
        await write.future
    assert reported == [["r"]] and waiting == {} and writes.count == 0
