"""HolderJournal on a real RabbitMQ node: the journal contract, fencing across holder streams (a live
old holder, and a SIGSTOP'd holder process), and group commit (many rooms' records in one message).

No assertion reads a clock; waits go through the journal's own bounded timeouts or ``wait_until``."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from pathlib import Path

import pytest
import pytest_asyncio

from journal.base import Fenced, Journal
from journal.holder_entries import FENCE, HOLDER, START, decode, encode
from journal.holder import HolderJournal
from journal.settings import StreamJournalSettings
from journal.stream_fold import Message
from journal.stream_read import Seer, scan
from tests.journal.contract import JournalContract
from tests.journal.contract import MakeJournal as ContractMake
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp]

ROOT = Path(__file__).resolve().parents[2]

MakeJournal = Callable[..., Awaitable[HolderJournal]]


def _settings(prefix: str, **overrides: object) -> StreamJournalSettings:
    # small streams: tests make many
    base: dict[str, object] = {"prefix": prefix, "room_max_bytes": 5_000_000, "room_segment_bytes": 1_000_000,
                               "snapshot_max_bytes": 200_000, "snapshot_segment_bytes": 100_000,
                               "rooms_max_bytes": 1_000_000, "rooms_segment_bytes": 500_000,
                               "holder_max_bytes": 5_000_000, "holder_segment_bytes": 1_000_000}
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


# -- fencing across holder streams --------------------------------------------------------------------

async def test_a_claimer_fences_a_live_old_holder_in_its_own_holder_stream(make_journal: MakeJournal) -> None:
    old, new = await make_journal(), await make_journal()
    assert old.holder != new.holder
    await old.claim("r", 1)
    written = [await old.append("r", 1, f"old{i}".encode()) for i in range(3)]
    assert await new.claim("r", 2) == written[-1]
    # the fence is in the old holder's stream: its next append is refused, whatever it knew before
    with pytest.raises(Fenced) as info:
        await old.append("r", 1, b"too late")
    assert (info.value.epoch, info.value.current) == (1, 2)
    mine = await new.append("r", 2, b"new0")
    assert mine > written[-1]
    for reader in (old, new):
        records = await reader.replay("r")
        assert [r.body for r in records] == [b"old0", b"old1", b"old2", b"new0"]
        assert [r.offset for r in records] == [*written, mine]
    # the old holder's other rooms are not touched
    await old.claim("other", 1)
    assert await old.append("other", 1, b"still mine") > 0


async def test_records_racing_a_claim_count_only_if_they_landed_before_the_fence(make_journal: MakeJournal) -> None:
    old, new = await make_journal(), await make_journal()
    await old.claim("r", 1)
    bodies: list[bytes] = []
    futures: list[asyncio.Future[int]] = []

    def submit() -> None:
        bodies.append(f"old{len(bodies)}".encode())
        futures.append(old.submit("r", 1, bodies[-1]))

    claiming = asyncio.ensure_future(new.claim("r", 2))
    while not claiming.done():  # the old holder writes all along the claim
        submit()
        await asyncio.sleep(0.001)
    last_before = await claiming
    submit()
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    done = {body: outcome for body, outcome in zip(bodies, outcomes) if isinstance(outcome, int)}
    assert all(isinstance(outcome, (int, Fenced)) for outcome in outcomes), outcomes
    assert isinstance(outcomes[-1], Fenced) and done
    records = await new.replay("r")
    assert {r.body: r.offset for r in records} == done  # every record done is there, no refused one
    assert [r.body for r in records] == bodies[:len(records)]  # and they are a prefix, in order
    assert last_before == records[-1].offset


async def test_a_holder_process_stopped_then_resumed_after_a_claim_writes_nothing_replay_returns(
        make_journal: MakeJournal, broker_url: str) -> None:
    new = await make_journal()
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.journal.holder_appender", broker_url,
                                                 new.settings.prefix, "r", cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    lines: list[str] = []

    async def read_until(count: int) -> None:
        while sum(line.startswith("ok") for line in lines) < count:
            line = await asyncio.wait_for(child.stdout.readline(), timeout=60)  # type: ignore[union-attr]
            assert line, "the appender stopped before it was fenced"
            lines.append(line.decode().strip())

    try:
        await read_until(30)
        child.send_signal(signal.SIGSTOP)  # frozen mid-appends: what it wrote may still be on its way
        try:
            assert await new.claim("r", 2) > 0
            mine = await new.append("r", 2, b"new")
        finally:
            child.send_signal(signal.SIGCONT)
        rest, _ = await asyncio.wait_for(child.communicate(), timeout=60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0
    lines += rest.decode().splitlines()
    done = {line.split()[1]: int(line.split()[2]) for line in lines if line.startswith("ok")}
    refused = {line.split()[1] for line in lines if line.startswith("fenced")}
    assert len(refused) >= 3  # it went on after it was resumed, and was refused
    records = await new.replay("r")
    assert records[-1].body == b"new" and records[-1].offset == mine
    replayed = {r.body.decode(): r.offset for r in records[:-1]}
    assert replayed == done  # exactly what it was told was written: nothing it wrote after the fence
    assert not refused & replayed.keys()


# -- group commit -----------------------------------------------------------------------------------------

def _counter(counts: dict[str, int]) -> Callable[[], Seer]:
    def see(message: Message) -> bool:
        if message.kind == HOLDER:
            counts["messages"] += 1
            counts["entries"] += len(decode(message.body))
        return False

    def begin() -> Seer:
        counts.update(messages=0, entries=0)
        return see

    return begin


async def test_concurrent_appends_to_many_rooms_share_holder_messages(make_journal: MakeJournal) -> None:
    journal = await make_journal()
    rooms = [f"r{i}" for i in range(40)]
    for room in rooms:
        await journal.claim(room, 1)
    counts: dict[str, int] = {}
    await scan(journal._link, journal.holder, "first", _counter(counts))
    before = dict(counts)

    async def append(i: int, room: str) -> int:
        for _ in range(i):  # one by one, each in a loop turn of its own (much faster than a round trip)
            await asyncio.sleep(0)
        return await journal.append(room, 1, room.encode())

    offsets = await asyncio.gather(*(append(i, room) for i, room in enumerate(rooms)))
    assert all(offset > 0 for offset in offsets)
    await scan(journal._link, journal.holder, "first", _counter(counts))
    messages, entries = counts["messages"] - before["messages"], counts["entries"] - before["entries"]
    assert entries == len(rooms)
    assert messages < len(rooms) // 4, counts  # one message in flight, the rest in the next one
    for room, offset in zip(rooms, offsets):
        assert [(r.offset, r.body) for r in await journal.replay(room)] == [(offset, room.encode())]


async def test_records_under_a_new_epoch_submitted_during_its_claim_are_kept_once(make_journal: MakeJournal) -> None:
    journal = await make_journal()
    await journal.claim("r", 1)
    first = await journal.append("r", 1, b"one")
    claiming = asyncio.ensure_future(journal.claim("r", 2))
    await asyncio.sleep(0)  # the claim has started: these wait for it, then hold nothing more
    appended = await asyncio.gather(journal.append("r", 2, b"two"), journal.append("r", 2, b"three"))
    assert await claiming == first
    more = await journal.append("r", 2, b"four")
    records = await journal.replay("r")
    assert [(r.offset, r.body) for r in records] == [
        (first, b"one"), (appended[0], b"two"), (appended[1], b"three"), (more, b"four")]
    other = await make_journal()
    assert await other.replay("r") == records


async def test_a_takeover_replays_then_claims_and_gets_what_was_written_in_between(make_journal: MakeJournal) -> None:
    old, new = await make_journal(), await make_journal()
    await old.claim("r", 1)
    written = [await old.append("r", 1, f"old{i}".encode()) for i in range(3)]
    assert [r.offset for r in await new.replay("r")] == written
    written.append(await old.append("r", 1, b"old3"))  # after the replay, before the claim
    assert await new.claim("r", 2) == written[-1]
    with pytest.raises(Fenced):
        await old.append("r", 1, b"too late")
    assert [r.offset for r in await new.replay("r", after=written[1])] == written[2:]
    # replayed to its end (fenced): the next claimer needs no fence there, and still gets the last record
    other = await make_journal()
    assert [r.body for r in await other.replay("r")] == [b"old0", b"old1", b"old2", b"old3"]
    assert await other.claim("r", 3) == written[-1]
    with pytest.raises(Fenced):
        await new.append("r", 2, b"fenced too")


async def test_a_window_whose_start_retention_dropped_replays_what_is_left(make_journal: MakeJournal) -> None:
    # tiny streams: retention drops whole segments, the holder stream's first ones with the room's START
    # (the smallest holder stream allowed; room streams keep their own sizes)
    journal = await make_journal(holder_max_bytes=1_000_000, holder_segment_bytes=200_000)
    await journal.claim("r", 1)
    body = bytes(10_000)
    offsets = [await journal.append("r", 1, body) for _ in range(150)]
    records = await journal.replay("r")
    assert 0 < len(records) < len(offsets)  # the start is gone
    assert [r.offset for r in records] == offsets[-len(records):]  # what is left, a suffix


async def test_a_window_read_that_ends_early_in_a_busy_holder_stream_keeps_the_connection(
        make_journal: MakeJournal) -> None:
    old, new, reader = await make_journal(), await make_journal(), await make_journal()
    await old.claim("r", 1)
    kept = await old.append("r", 1, b"kept")
    await new.claim("r", 2)  # r's window in old's stream ends at the fence ...
    await old.claim("busy", 1)  # ... and old's stream goes on with another room's records
    for _ in range(30):
        await asyncio.gather(*(old.append("busy", 1, bytes(100)) for _ in range(200)))
    for _ in range(3):  # each read ends at the fence, thousands of messages short of the stream's end
        assert [r.offset for r in await reader.replay("r")] == [kept]
        assert await reader.claim("r", 3 + _) == kept
    assert reader.reconnects == 0


async def test_two_claims_racing_leave_one_history_every_reader_agrees_on(make_journal: MakeJournal) -> None:
    old, second, third = await make_journal(), await make_journal(), await make_journal()
    await old.claim("r", 1)
    outcomes: list[tuple[bytes, int | BaseException]] = []

    async def keep_writing(journal: HolderJournal, epoch: int, name: str, count: int = 10_000) -> None:
        for i in range(count):
            body = f"{name}{i}".encode()
            try:
                outcomes.append((body, await journal.append("r", epoch, body)))
            except Fenced as exc:
                outcomes.append((body, exc))
                return
            await asyncio.sleep(0.001)

    async def claim_then_write(journal: HolderJournal, epoch: int, name: str, count: int = 10_000) -> None:
        try:
            await journal.claim("r", epoch)
        except Fenced:
            return
        await keep_writing(journal, epoch, name, count)

    writing = asyncio.ensure_future(keep_writing(old, 1, "old"))
    await asyncio.sleep(0.05)
    await asyncio.gather(claim_then_write(second, 2, "second"), claim_then_write(third, 3, "third", 20),
                         asyncio.wait_for(writing, 30))
    # the third (highest epoch) holds the room: the others were fenced
    assert all(isinstance(outcome, int) for body, outcome in outcomes if body.startswith(b"third"))
    final = await third.append("r", 3, b"last")
    done = {body: outcome for body, outcome in outcomes if isinstance(outcome, int)}
    done[b"last"] = final
    records = await (await make_journal()).replay("r")
    assert {r.body: r.offset for r in records} == done  # what was written is there, nothing refused
    assert [r.offset for r in records] == sorted(r.offset for r in records)
    assert [r.epoch for r in records] == sorted(r.epoch for r in records)
    for journal in (old, second, third):
        assert await journal.replay("r") == records


async def test_a_holder_fenced_by_a_claimer_that_died_before_its_claim_cannot_hold_the_room_again(
        make_journal: MakeJournal) -> None:
    old, claimer = await make_journal(), await make_journal()
    await old.claim("r", 1)
    kept = await old.append("r", 1, b"kept")
    # what a claimer of epoch 2 does first (step 2), then it dies before its claim reaches the claims log
    fence = encode([(FENCE, "r", 2, b"")])
    assert await scan(claimer._link, old.holder, "first", _counter({}), headers={"k": HOLDER}, body=fence)
    await wait_until(lambda: "r" not in old._holdings, what="the old holder saw the fence")
    # the claims log still names it under epoch 1, but its own stream has the fence: no new window there
    with pytest.raises(Fenced):
        await old.append("r", 1, b"after the fence")
    with pytest.raises(Fenced):
        await old.claim("r", 2)
    assert [r.body for r in await claimer.replay("r")] == [b"kept"]
    assert await old.claim("r", 3) == kept
    again = await old.append("r", 3, b"again")
    assert [(r.offset, r.body) for r in await claimer.replay("r")] == [(kept, b"kept"), (again, b"again")]


async def test_a_claim_fences_every_claim_that_landed_between_its_read_and_its_own(make_journal: MakeJournal) -> None:
    old, racer, claimer = await make_journal(), await make_journal(), await make_journal()
    await old.claim("r", 1)
    await old.append("r", 1, b"old")
    writer = claimer._writer
    add = writer.add

    async def interleaved(*args: Any) -> Any:
        # after the claimer read the log and fenced the old holder, before its own claim lands: the racer
        # claims (epoch 2), then a claim of epoch 3 by a journal that dies at once (it fences nobody)
        await racer.claim("r", 2)
        written.append(await racer.append("r", 2, b"racer"))
        await racer._link.publish(f"{racer.settings.prefix}room.r", b"",
                                  {"k": "claim", "e": 3, "h": "nobody.holder", "s": 1, "i": 0, "l": 0})
        return await add(*args)

    def add_then(kind: int, room: str, epoch: int, body: bytes, future: Any = None) -> Any:
        if kind == START and room == "r" and epoch == 4:
            return asyncio.ensure_future(interleaved(kind, room, epoch, body))
        return add(kind, room, epoch, body, future)

    writer.add = add_then  # type: ignore[method-assign]
    written: list[int] = []
    assert await claimer.claim("r", 4) == written[0]
    with pytest.raises(Fenced):  # the racer's window was ended by the claimer itself
        await racer.append("r", 2, b"too late")
    assert [r.body for r in await claimer.replay("r")] == [b"old", b"racer"]


async def test_a_hold_follows_the_load_it_never_delays_a_lone_record(make_journal: MakeJournal) -> None:
    plain, holding = await make_journal(), await make_journal(holder_hold=0.05)
    rooms = {plain: [f"plain{i}" for i in range(80)], holding: [f"held{i}" for i in range(80)]}
    for journal in (plain, holding):
        for room in rooms[journal]:
            await journal.claim(room, 1)
        for room in rooms[journal][:5]:  # one at a time: each message carries one record, nothing is held
            await journal.append(room, 1, b"alone")
        assert journal._writer.held == 0

    async def load(journal: HolderJournal) -> int:
        before = journal.messages

        async def append(i: int, room: str) -> int:
            await asyncio.sleep(i * 0.0005)  # arriving one after the other over ~40 ms
            return await journal.append(room, 1, b"busy")

        assert all(await asyncio.gather(*(append(i, room) for i, room in enumerate(rooms[journal]))))
        return journal.messages - before

    plain_messages, held_messages = await load(plain), await load(holding)
    assert plain._writer.held == 0 and holding._writer.held >= 1
    assert held_messages * 2 < plain_messages, (held_messages, plain_messages)
    assert [r.body for r in await holding.replay("held0")] == [b"alone", b"busy"]
