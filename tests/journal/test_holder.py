"""HolderJournal on a real RabbitMQ node: the journal contract, fencing across holder streams (a live
old holder, and a SIGSTOP'd holder process), and group commit (many rooms' records in one message).

No assertion reads a clock; waits go through the journal's own bounded timeouts or ``wait_until``."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from pathlib import Path

import pytest
import pytest_asyncio

from journal import holder_claims
from journal.base import Fenced, Journal, JournalUnavailable, Snapshot, WrongJournalKind
from journal.holder_entries import FENCE, HOLDER, START, decode, encode, parts
from journal.holder import HolderJournal
from journal.settings import StreamJournalSettings
from journal.stream import StreamJournal
from journal.stream_fold import Message
from journal.stream_read import Seer, scan
from tests.journal.contract import JournalContract
from tests.journal.contract import MakeJournal as ContractMake
from tests.journal.holder_support import MakeJournal, holder_settings, journal_maker
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp]

ROOT = Path(__file__).resolve().parents[2]



_settings = holder_settings


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
    return journal_maker(broker_url, made_journals, "holder")


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


class _Died(Exception):
    """A claimer stopped here (its process died)."""


async def test_a_window_left_open_by_a_claimer_that_died_before_ending_it_is_ended_by_the_next_claimer(
        make_journal: MakeJournal) -> None:
    old, racer, dying, last = [await make_journal() for _ in range(4)]
    await old.claim("r", 1)
    written = [await old.append("r", 1, b"old")]
    add, fence = dying._writer.add, dying._claims._fence

    async def interleaved(*args: Any) -> Any:
        # after the dying claimer read the log and fenced the old holder, before its claim lands: the racer
        # claims (epoch 2) and writes
        await racer.claim("r", 2)
        written.append(await racer.append("r", 2, b"racer0"))
        return await add(*args)

    def add_then(kind: int, room: str, epoch: int, body: bytes, future: Any = None) -> Any:
        if kind == START and room == "r" and epoch == 3:
            return asyncio.ensure_future(interleaved(kind, room, epoch, body))
        return add(kind, room, epoch, body, future)

    async def dies_before_ending_the_racer(room: str, epoch: int, claim: Any) -> int:
        if claim.holder == racer.holder:  # step 5: its claim (epoch 3) is in the log, the racer not fenced
            raise _Died()
        return await fence(room, epoch, claim)

    dying._writer.add = add_then  # type: ignore[method-assign]
    dying._claims._fence = dies_before_ending_the_racer  # type: ignore[method-assign]
    with pytest.raises(_Died):
        await dying.claim("r", 3)
    await dying.close()
    # the racer's window is open: nothing in its stream ended it, so it goes on writing
    written.append(await racer.append("r", 2, b"racer1"))
    # the next claimer ends every window the claims log says is open, not only the dead claimer's
    assert await last.claim("r", 4) == written[-1]
    with pytest.raises(Fenced):
        await racer.append("r", 2, b"too late")
    mine = await last.append("r", 4, b"last")
    for reader in (last, await make_journal()):
        records = await reader.replay("r")
        assert [r.body for r in records] == [b"old", b"racer0", b"racer1", b"last"]
        assert [r.offset for r in records] == [*written, mine]
    # and the log says it was ended: a later claimer fences only the current holder
    fenced: list[str] = []
    after = await make_journal()
    after_fence = after._claims._fence

    async def counted(room: str, epoch: int, claim: Any) -> int:
        fenced.append(claim.holder)
        return await after_fence(room, epoch, claim)

    after._claims._fence = counted  # type: ignore[method-assign]
    assert await after.claim("r", 5) == mine
    assert fenced == [last.holder]


async def test_a_record_submitted_while_forget_is_under_way_is_in_the_new_history_or_refused(
        make_journal: MakeJournal) -> None:
    journal = await make_journal()
    await journal.claim("r", 1)
    await journal.append("r", 1, b"before")
    publish = journal._link.publish
    during: list[asyncio.Future[int]] = []

    async def publish_then_submit(queue: str, body: bytes, headers: dict[str, Any], message_id: str | None = None) -> None:
        await publish(queue, body, headers, message_id)
        if headers.get("k") == "forgotten" and queue == journal._layout.room_queue("r") and not during:
            # the room's "forgotten" entry is in its claims log: a record submitted now comes after the forget
            during.append(journal.submit("r", 1, b"during"))
            await wait_until(lambda: during[0].done() or "r" in journal._queued, what="the record's fate")

    journal._link.publish = publish_then_submit  # type: ignore[method-assign]
    in_flight = journal.submit("r", 1, b"in flight")  # before the forget: its outcome comes first, pre-forget
    await journal.forget("r")
    journal._link.publish = publish  # type: ignore[method-assign]
    assert isinstance(await in_flight, int)
    outcome = (await asyncio.gather(during[0], return_exceptions=True))[0]
    records = await journal.replay("r")
    if isinstance(outcome, int):  # told done: then it is in the room's new history
        assert [(r.offset, r.body) for r in records] == [(outcome, b"during")]
    else:
        assert records == []
    assert [r.body for r in await (await make_journal()).replay("r")] == [r.body for r in records]


async def test_a_record_in_flight_when_forget_lets_the_room_go_gets_its_offset_before_the_forget(
        make_journal: MakeJournal) -> None:
    journal = await make_journal()
    await journal.claim("r", 1)
    await journal.append("r", 1, b"before")
    writer = journal._writer
    writer._in_flight += 1  # a message in flight: the next waits
    in_flight = journal.submit("r", 1, b"in flight")
    forgetting = asyncio.ensure_future(journal.forget("r"))
    await wait_until(lambda: "r" not in journal._holdings, what="the forget let the room go")
    writer._in_flight -= 1
    writer._schedule()  # the record goes out now, after the room was let go, ahead of the forget's END
    await forgetting
    offset = await in_flight
    assert offset > 0 and await journal.replay("r") == []  # done, before the forget
    assert [r.body for r in await (await make_journal()).replay("r")] == []
    assert await journal.append("r", 1, b"again") > offset  # held again after the forget: a new history


async def test_after_a_forget_the_next_claimer_does_not_read_the_forgetting_holders_window(
        make_journal: MakeJournal) -> None:
    old, new = await make_journal(), await make_journal()
    await old.claim("r", 1)
    for _ in range(3):
        await old.append("r", 1, b"closed")
    await old.forget("r")  # its END ended its window, and the "forgotten" entry says so
    fenced: list[str] = []
    fence = new._claims._fence

    async def counted(room: str, epoch: int, claim: Any) -> int:
        fenced.append(claim.holder)
        return await fence(room, epoch, claim)

    new._claims._fence = counted  # type: ignore[method-assign]
    assert await new.claim("r", 2) == 0
    assert fenced == []
    with pytest.raises(Fenced):  # the forgotten room cannot be written under the old epoch: it is new's now
        await old.append("r", 1, b"late")
    mine = await new.append("r", 2, b"reopened")
    assert [(r.offset, r.body) for r in await (await make_journal()).replay("r")] == [(mine, b"reopened")]


@pytest.mark.parametrize("seed", range(6))
async def test_claims_racing_while_claimers_die_at_any_step_leave_no_window_open(
        make_journal: MakeJournal, seed: int) -> None:
    rng = random.Random(seed)
    outcomes: list[tuple[bytes, int | BaseException]] = []
    writers: list[asyncio.Future[None]] = []

    async def keep_writing(journal: HolderJournal, epoch: int, name: str) -> None:
        for i in range(100_000):  # until a claim ends its window: a window left open never ends it
            body = f"{name}.{i}".encode()
            try:
                outcomes.append((body, await journal.append("r", epoch, body)))
            except Fenced as exc:
                outcomes.append((body, exc))
                return
            await asyncio.sleep(0.001)

    def dies_at(journal: HolderJournal, call: int) -> None:
        """The journal dies at its ``call``-th fence of the claim (step 2, or step 5 after its claim landed)."""
        fence, calls = journal._claims._fence, [0]

        async def fence_or_die(room: str, epoch: int, claim: Any) -> int:
            calls[0] += 1
            if calls[0] == call:
                raise _Died()
            return await fence(room, epoch, claim)

        journal._claims._fence = fence_or_die  # type: ignore[method-assign]

    async def claim(journal: HolderJournal, epoch: int, name: str) -> None:
        try:
            await journal.claim("r", epoch)
        except _Died:
            await journal.close()
            return
        except Fenced:
            return
        finally:
            vars(journal._claims).pop("_fence", None)  # it may die only in this claim, not in a later hold
        writers.append(asyncio.ensure_future(keep_writing(journal, epoch, name)))

    first = await make_journal()
    await first.claim("r", 1)
    writers.append(asyncio.ensure_future(keep_writing(first, 1, "first")))
    epoch = 1
    for round_ in range(3):
        await asyncio.sleep(0.02)
        claimers = [await make_journal() for _ in range(4)]
        epochs = rng.sample(range(epoch + 1, epoch + 5), 4)
        epoch += 4
        for journal in claimers:
            if rng.random() < 0.7:
                dies_at(journal, rng.choice([1, 2, 2, 3]))
        await asyncio.gather(*(claim(journal, e, f"{round_}.{n}") for n, (journal, e) in enumerate(zip(claimers, epochs))))
    final = await make_journal()
    await final.claim("r", epoch + 1)
    # every window but final's is ended now: every writer is refused (within its bounded wait)
    await asyncio.wait_for(asyncio.gather(*writers), 30)
    mine = await final.append("r", epoch + 1, b"final")
    done = {body: outcome for body, outcome in outcomes if isinstance(outcome, int)}
    done[b"final"] = mine
    records = await (await make_journal()).replay("r")
    assert {r.body: r.offset for r in records} == done  # every record told done, none refused
    assert [r.offset for r in records] == sorted(r.offset for r in records)
    assert [r.epoch for r in records] == sorted(r.epoch for r in records)


async def test_a_hold_follows_the_load_it_never_delays_a_lone_record(make_journal: MakeJournal) -> None:
    # No clock: the writer's decisions are looked at between loop turns (a flush scheduled with call_soon runs
    # before the task that scheduled it resumes; a message's round trip to the broker takes more than a turn).
    journal = await make_journal(holder_hold=0.1)
    writer = journal._writer
    rooms = [f"held{i}" for i in range(4)]
    for room in rooms:
        await journal.claim(room, 1)
    for room in rooms:  # one at a time: each message carries one record, nothing is held
        await journal.append(room, 1, b"alone")
    lone = journal.submit(rooms[0], 1, b"lone")
    await asyncio.sleep(0)  # its message is out
    after_lone = journal.submit(rooms[1], 1, b"after lone")  # waits for it, then goes at once: not held
    await asyncio.gather(lone, after_lone)
    assert writer.held == 0
    # a message that carried several records: the next one is held (long enough here for the test to see it)
    writer._hold = 3600.0
    shared = [journal.submit(room, 1, b"shared") for room in rooms[:2]]
    await asyncio.sleep(0)  # their message is out
    waiting = [journal.submit(rooms[2], 1, b"waiting")]  # waits for it, then for the hold
    await asyncio.gather(*shared)
    assert writer.held == 1 and writer._timer is not None
    sent = journal.messages
    for room in (rooms[3], rooms[0]):  # arriving in loop turns of their own, while the next message is held
        waiting.append(journal.submit(room, 1, b"joined"))
        await asyncio.sleep(0)
    assert journal.messages == sent and not any(future.done() for future in waiting)
    timer = writer._timer
    assert timer is not None
    timer.cancel()
    writer._flush()  # what the timer does when the hold is over
    offsets = await asyncio.gather(*waiting)
    assert journal.messages == sent + 1  # the three in one message
    assert len({parts(offset)[1] for offset in offsets}) == 1
    assert [r.body for r in await journal.replay(rooms[2])] == [b"alone", b"waiting"]
    assert [r.body for r in await journal.replay(rooms[0])] == [b"alone", b"lone", b"shared", b"joined"]
    # without a hold, the same sequence never holds
    plain = await make_journal(holder_hold=0.0)
    await plain.claim("plain", 1)
    shared = [plain.submit("plain", 1, b"shared") for _ in range(2)]
    await asyncio.sleep(0)
    after = plain.submit("plain", 1, b"after")
    await asyncio.gather(*shared)
    assert plain._writer.held == 0 and plain._writer._timer is None
    await after


# -- migration: rooms the stream journal (one stream per room, journal.kind = "stream") wrote ----------------

@pytest_asyncio.fixture
async def stream_journals(broker_url: str) -> AsyncIterator[Callable[[HolderJournal], Awaitable[StreamJournal]]]:
    """Stream journals on the same prefix as a holder journal (a controller not switched yet)."""
    made: list[StreamJournal] = []

    async def make(beside: HolderJournal) -> StreamJournal:
        made.append(StreamJournal(broker_url, beside.settings, name=f"stream-{len(made)}"))
        await made[-1].open()
        return made[-1]

    yield make
    for journal in made:
        await journal.close()


MakeStream = Callable[[HolderJournal], Awaitable[StreamJournal]]


async def test_a_holder_journal_takes_over_a_room_the_stream_journal_wrote_and_fences_it(
        make_journal: MakeJournal, stream_journals: MakeStream) -> None:
    new = await make_journal()
    old = await stream_journals(new)
    await old.claim("r", 1)
    written = [await old.append("r", 1, f"old{i}".encode()) for i in range(3)]
    # a takeover: replay, then claim a newer epoch
    assert [(r.offset, r.body) for r in await new.replay("r")] == [(o, f"old{i}".encode()) for i, o in enumerate(written)]
    assert [r.offset for r in await new.replay("r", after=written[0])] == written[1:]
    written.append(await old.append("r", 1, b"old3"))  # between the replay and the claim
    assert await new.claim("r", 2) == written[-1]
    with pytest.raises(Fenced) as info:  # the claim, in the room's stream, fences the stream journal
        await old.append("r", 1, b"too late")
    assert info.value.current == 2
    mine = await new.append("r", 2, b"new0")
    assert mine > written[-1]
    expected = [*(f"old{i}".encode() for i in range(4)), b"new0"]
    for reader in (new, await make_journal()):
        records = await reader.replay("r")
        assert [r.body for r in records] == expected
        assert [r.offset for r in records] == [*written, mine]
    assert "r" in await new.rooms()
    # the next holder claimer fences the holder journal as usual, and gets its last record
    third = await make_journal()
    assert await third.claim("r", 3) == mine
    with pytest.raises(Fenced):
        await new.append("r", 2, b"fenced too")


async def test_a_stream_journal_writing_while_a_holder_journal_claims_keeps_what_it_was_told(
        make_journal: MakeJournal, stream_journals: MakeStream) -> None:
    new = await make_journal()
    old = await stream_journals(new)
    await old.claim("r", 1)
    bodies: list[bytes] = []
    futures: list[asyncio.Future[int]] = []

    def submit() -> None:
        bodies.append(f"old{len(bodies)}".encode())
        futures.append(old.submit("r", 1, bodies[-1]))

    submit()
    claiming = asyncio.ensure_future(new.claim("r", 2))
    while not claiming.done():  # the stream journal writes all along the claim
        submit()
        await asyncio.sleep(0.001)
    last_before = await claiming
    submit()
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    done = {body: outcome for body, outcome in zip(bodies, outcomes) if isinstance(outcome, int)}
    assert all(isinstance(outcome, (int, Fenced)) for outcome in outcomes), outcomes
    assert isinstance(outcomes[-1], Fenced) and done
    records = await (await make_journal()).replay("r")
    assert {r.body: r.offset for r in records} == done  # every record done is there, no refused one
    assert [r.body for r in records] == bodies[:len(records)]
    assert last_before == records[-1].offset


async def test_a_holder_journals_first_append_under_a_newer_epoch_fences_the_stream_journal(
        make_journal: MakeJournal, stream_journals: MakeStream) -> None:
    new = await make_journal()
    old = await stream_journals(new)
    await old.claim("r", 1)
    kept = await old.append("r", 1, b"old")
    mine = await new.append("r", 2, b"new")  # no claim: a hold, written as a claim the stream journal counts
    with pytest.raises(Fenced):
        await old.append("r", 1, b"too late")
    assert [(r.offset, r.body) for r in await (await make_journal()).replay("r")] == [(kept, b"old"), (mine, b"new")]


async def test_a_migrated_room_keeps_the_stream_journals_snapshot_and_forgets(
        make_journal: MakeJournal, stream_journals: MakeStream) -> None:
    new = await make_journal()
    old = await stream_journals(new)
    await old.claim("gone", 1)
    await old.append("gone", 1, b"old history")
    await old.forget("gone")
    await old.claim("r", 1)
    await old.append("r", 1, b"forgotten")
    await old.forget("r")  # a new history after it
    offsets = [await old.append("r", 1, f"old{i}".encode()) for i in range(4)]
    await old.save_snapshot("r", Snapshot(offsets[1], 1, b"state"))
    assert await new.replay("gone") == []
    assert await new.snapshot("r") == Snapshot(offsets[1], 1, b"state")
    assert [r.body for r in await new.replay("r")] == [b"old0", b"old1", b"old2", b"old3"]
    assert [r.offset for r in await new.replay("r", after=offsets[1])] == offsets[2:]
    assert await new.claim("r", 2) == offsets[-1]
    mine = await new.append("r", 2, b"new")
    await new.save_snapshot("r", Snapshot(mine, 2, b"newer"))
    assert [r.offset for r in await new.replay("r", after=offsets[1])] == [*offsets[2:], mine]
    assert await new.replay("r", after=mine) == []
    await new.forget("r")
    assert await new.replay("r") == [] and "r" not in await new.rooms()


async def test_the_stream_journal_refuses_a_room_the_holder_journal_wrote(
        make_journal: MakeJournal, stream_journals: MakeStream) -> None:
    holder = await make_journal()
    stream = await stream_journals(holder)
    await holder.append("held", 1, b"in a holder stream")  # a hold only
    await holder.claim("claimed", 1)
    await holder.append("claimed", 1, b"in a holder stream")
    for room in ("held", "claimed"):
        with pytest.raises(WrongJournalKind) as info:  # not misread as a room without records
            await stream.replay(room)
        assert info.value.code == "journal_kind_mismatch" and info.value.room == room
    await stream.claim("its own", 1)
    assert [r.body for r in await stream.replay("its own")] == []


async def test_a_claim_of_a_room_whose_stream_is_too_long_for_holder_offsets_is_refused_before_it_fences(
        make_journal: MakeJournal, stream_journals: MakeStream, monkeypatch: pytest.MonkeyPatch) -> None:
    new = await make_journal()
    old = await stream_journals(new)
    await old.claim("r", 1)
    for i in range(20):
        await old.append("r", 1, b"old")
    monkeypatch.setattr(holder_claims, "CLAIM_LIMIT", 22)  # as if the stream journal had written ~2^20 messages
    monkeypatch.setattr(holder_claims, "_CLAIM_MARGIN", 2)
    with pytest.raises(JournalUnavailable, match="too many"):
        await new.claim("r", 2)
    assert await old.append("r", 1, b"still held") > 0  # nothing fenced: the room stays where it was
