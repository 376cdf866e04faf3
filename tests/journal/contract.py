"""The journal contract (:mod:`journal.base`) as a reusable test class.

Each implementation's test module subclasses :class:`JournalContract` and overrides the ``make``
fixture: a factory that returns a new, unopened journal over the same storage every time it is called
(a durable implementation's second journal sees what the first one wrote).  Set ``durable = False``
for a journal that keeps nothing across instances (the reopen tests are then skipped).

The contract has one journal open over a storage at a time: a second one is opened after the first is
closed.  A journal may refuse a second open while one is open (the file journal does: the ``flock`` on
its directory's ``LOCK`` file belongs to the open file, so a second journal object in the same process
is refused as another process is); that a second journal sees the first's writes while the first stays
open is the test of each store that allows it (SQLite: another connection's claim fences the holder off).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import ClassVar

import pytest
import pytest_asyncio

from journal import Fenced, Journal, JournalRecord, JournalUnavailable, Snapshot

__all__ = ["JournalContract", "MakeJournal"]

MakeJournal = Callable[[], Journal]


def _bodies(records: list[JournalRecord]) -> list[bytes]:
    return [record.body for record in records]


class JournalContract:
    durable: ClassVar[bool] = True

    @pytest.fixture
    def make(self) -> MakeJournal:
        raise NotImplementedError("a subclass provides the journal factory")

    @pytest_asyncio.fixture
    async def journal(self, make: MakeJournal) -> AsyncIterator[Journal]:
        journal = make()
        await journal.open()
        yield journal
        await journal.close()

    # -- append and replay

    async def test_a_room_with_no_records_replays_nothing(self, journal: Journal) -> None:
        assert await journal.replay("r") == []
        assert await journal.snapshot("r") is None
        assert await journal.rooms() == []

    async def test_replay_returns_the_records_in_the_order_they_were_appended(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        offsets = [await journal.append("r", 1, f"e{i}".encode()) for i in range(5)]
        records = await journal.replay("r")
        assert _bodies(records) == [f"e{i}".encode() for i in range(5)]
        assert [record.offset for record in records] == offsets
        assert all(record.epoch == 1 for record in records)

    async def test_offsets_are_positive_and_increase_within_a_room(self, journal: Journal) -> None:
        await journal.claim("a", 1)
        await journal.claim("b", 1)
        a = [await journal.append("a", 1, b"x"), await journal.append("a", 1, b"y")]
        await journal.append("b", 1, b"z")
        a.append(await journal.append("a", 1, b"w"))
        assert a[0] > 0
        assert a == sorted(a) and len(set(a)) == 3

    async def test_replay_after_an_offset_returns_only_later_records(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        offsets = [await journal.append("r", 1, bytes([i])) for i in range(4)]
        assert _bodies(await journal.replay("r", after=offsets[1])) == [bytes([2]), bytes([3])]
        assert await journal.replay("r", after=offsets[-1]) == []

    async def test_rooms_do_not_see_each_others_records(self, journal: Journal) -> None:
        await journal.append("a", 1, b"for a")
        await journal.append("b", 1, b"for b")
        assert _bodies(await journal.replay("a")) == [b"for a"]
        assert _bodies(await journal.replay("b")) == [b"for b"]

    async def test_empty_and_binary_bodies_come_back_unchanged(self, journal: Journal) -> None:
        bodies = [b"", bytes(range(256)), b"\x00" * 1000]
        for body in bodies:
            await journal.append("r", 1, body)
        assert _bodies(await journal.replay("r")) == bodies

    # -- fencing

    async def test_an_append_under_a_lower_epoch_than_the_claimed_one_is_fenced(self, journal: Journal) -> None:
        await journal.claim("r", 3)
        with pytest.raises(Fenced) as caught:
            await journal.append("r", 2, b"stale")
        assert (caught.value.room, caught.value.epoch, caught.value.current) == ("r", 2, 3)
        assert await journal.replay("r") == []

    async def test_a_claim_under_a_lower_epoch_is_fenced(self, journal: Journal) -> None:
        await journal.claim("r", 5)
        with pytest.raises(Fenced) as caught:
            await journal.claim("r", 4)
        assert caught.value.current == 5
        await journal.append("r", 5, b"still mine")

    async def test_a_newer_claim_fences_the_old_holder_off(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        first = await journal.append("r", 1, b"old holder")
        assert await journal.claim("r", 2) == first
        with pytest.raises(Fenced):
            await journal.append("r", 1, b"old holder, resumed")
        await journal.append("r", 2, b"new holder")
        assert _bodies(await journal.replay("r")) == [b"old holder", b"new holder"]

    async def test_claiming_the_current_epoch_again_is_fenced(self, journal: Journal) -> None:
        # Every placement claims an epoch of its own: two holders can never share one.
        assert await journal.claim("r", 1) == 0
        offset = await journal.append("r", 1, b"x")
        with pytest.raises(Fenced) as caught:
            await journal.claim("r", 1)
        assert caught.value.current == 1
        assert await journal.claim("r", 2) == offset
        assert await journal.append("r", 2, b"y") > offset

    async def test_an_append_under_a_higher_epoch_makes_it_current(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        await journal.append("r", 2, b"newer")
        with pytest.raises(Fenced):
            await journal.append("r", 1, b"older")
        with pytest.raises(Fenced):
            await journal.claim("r", 1)

    async def test_fencing_is_per_room(self, journal: Journal) -> None:
        await journal.claim("a", 7)
        await journal.claim("b", 1)
        await journal.append("b", 1, b"fine")

    # -- snapshots

    async def test_a_snapshot_round_trips(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        offset = await journal.append("r", 1, b"x")
        await journal.save_snapshot("r", Snapshot(offset=offset, epoch=1, body=b"state"))
        assert await journal.snapshot("r") == Snapshot(offset=offset, epoch=1, body=b"state")

    async def test_replay_after_a_snapshot_gives_exactly_the_later_records(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        offsets = [await journal.append("r", 1, bytes([i])) for i in range(3)]
        await journal.save_snapshot("r", Snapshot(offset=offsets[1], epoch=1, body=b"after two"))
        await journal.append("r", 1, bytes([3]))
        snapshot = await journal.snapshot("r")
        assert snapshot is not None
        assert _bodies(await journal.replay("r", after=snapshot.offset)) == [bytes([2]), bytes([3])]
        # Records at or below the snapshot may be gone; what replay(0) returns is a suffix of the history.
        everything = _bodies(await journal.replay("r"))
        assert [bytes([0]), bytes([1]), bytes([2]), bytes([3])][-len(everything):] == everything
        assert len(everything) >= 2

    async def test_the_newest_snapshot_wins_and_an_older_one_is_ignored(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        first = await journal.append("r", 1, b"a")
        second = await journal.append("r", 1, b"b")
        await journal.save_snapshot("r", Snapshot(offset=second, epoch=1, body=b"two"))
        await journal.save_snapshot("r", Snapshot(offset=first, epoch=1, body=b"one"))
        snapshot = await journal.snapshot("r")
        assert snapshot is not None and snapshot.body == b"two"
        third = await journal.append("r", 1, b"c")
        await journal.save_snapshot("r", Snapshot(offset=third, epoch=1, body=b"three"))
        snapshot = await journal.snapshot("r")
        assert snapshot is not None and snapshot.body == b"three"

    async def test_a_snapshot_under_a_lower_epoch_is_fenced(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        offset = await journal.append("r", 1, b"x")
        await journal.claim("r", 2)
        with pytest.raises(Fenced):
            await journal.save_snapshot("r", Snapshot(offset=offset, epoch=1, body=b"stale"))
        assert await journal.snapshot("r") is None
        assert _bodies(await journal.replay("r")) == [b"x"]

    async def test_claim_counts_records_a_snapshot_let_go(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        offset = await journal.append("r", 1, b"x")
        await journal.save_snapshot("r", Snapshot(offset=offset, epoch=1, body=b"s"))
        assert await journal.claim("r", 2) == offset

    # -- forget and rooms

    async def test_rooms_lists_claimed_and_appended_rooms(self, journal: Journal) -> None:
        await journal.claim("claimed", 1)
        await journal.append("appended", 1, b"x")
        assert await journal.rooms() == ["appended", "claimed"]

    async def test_a_forgotten_room_has_no_history_and_is_not_listed(self, journal: Journal) -> None:
        await journal.claim("r", 1)
        offset = await journal.append("r", 1, b"x")
        await journal.save_snapshot("r", Snapshot(offset=offset, epoch=1, body=b"s"))
        await journal.claim("other", 1)
        await journal.forget("r")
        assert await journal.replay("r") == []
        assert await journal.snapshot("r") is None
        assert await journal.rooms() == ["other"]

    async def test_after_forget_epochs_keep_increasing_and_a_new_history_starts(self, journal: Journal) -> None:
        await journal.claim("r", 4)
        old = await journal.append("r", 4, b"old")
        await journal.forget("r")
        with pytest.raises(Fenced):
            await journal.claim("r", 3)
        assert await journal.claim("r", 5) == 0
        new = await journal.append("r", 5, b"new")
        assert new > old
        assert _bodies(await journal.replay("r")) == [b"new"]
        assert await journal.rooms() == ["r"]

    async def test_forgetting_an_unknown_room_does_nothing(self, journal: Journal) -> None:
        await journal.forget("nobody")
        assert await journal.rooms() == []

    # -- concurrency

    async def test_concurrent_appends_from_many_tasks_are_all_kept_in_order(
        self, journal: Journal, make: MakeJournal
    ) -> None:
        rooms = ["r0", "r1", "r2"]
        for room in rooms:
            await journal.claim(room, 1)

        async def writer(task: int) -> list[tuple[str, int, bytes]]:
            done = []
            for i in range(5):
                room = rooms[(task + i) % len(rooms)]
                body = f"{task}:{i}".encode()
                done.append((room, await journal.append(room, 1, body), body))
            return done

        results = await asyncio.gather(*(writer(task) for task in range(50)))
        for room in rooms:
            records = await journal.replay(room)
            offsets = [record.offset for record in records]
            assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
            expected = {(offset, body) for done in results for (r, offset, body) in done if r == room}
            assert {(record.offset, record.body) for record in records} == expected
        for done in results:  # each task saw its own appends in a room get increasing offsets
            for room in rooms:
                mine = [offset for (r, offset, _) in done if r == room]
                assert mine == sorted(mine)
        if self.durable:  # a second journal over the same storage sees them all: they were durable
            replayed = {room: await journal.replay(room) for room in rooms}
            await journal.close()  # one journal open over a storage at a time
            other = make()
            await other.open()
            try:
                for room in rooms:
                    assert await other.replay(room) == replayed[room]
            finally:
                await other.close()

    # -- lifecycle and durability

    async def test_open_and_close_are_idempotent(self, make: MakeJournal) -> None:
        journal = make()
        await journal.open()
        await journal.open()
        await journal.append("r", 1, b"x")
        await journal.close()
        await journal.close()

    async def test_a_closed_journal_refuses_work(self, make: MakeJournal) -> None:
        journal = make()
        await journal.open()
        await journal.close()
        with pytest.raises(JournalUnavailable):
            await journal.append("r", 1, b"x")

    async def test_a_closed_journal_cannot_be_opened_again(self, make: MakeJournal) -> None:
        journal = make()
        await journal.open()
        await journal.close()
        with pytest.raises(RuntimeError, match="was closed; make a new one"):
            await journal.open()

    async def test_a_reopened_journal_keeps_everything(self, make: MakeJournal) -> None:
        if not self.durable:
            pytest.skip("not a durable journal")
        first = make()
        await first.open()
        await first.claim("r", 2)
        offsets = [await first.append("r", 2, bytes([i])) for i in range(3)]
        await first.save_snapshot("r", Snapshot(offset=offsets[0], epoch=2, body=b"s"))
        await first.claim("gone", 9)
        await first.forget("gone")
        await first.close()

        second = make()
        await second.open()
        try:
            assert await second.rooms() == ["r"]
            assert await second.snapshot("r") == Snapshot(offset=offsets[0], epoch=2, body=b"s")
            assert _bodies(await second.replay("r", after=offsets[0])) == [bytes([1]), bytes([2])]
            with pytest.raises(Fenced):
                await second.append("r", 1, b"stale")
            with pytest.raises(Fenced):
                await second.claim("gone", 8)
            assert await second.claim("r", 3) == offsets[-1]
            assert await second.append("r", 3, b"more") > offsets[-1]
        finally:
            await second.close()
