"""Outbox, dedupe window and permission patches on their own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conference_controller.dedupe import Deduper
from conference_controller.errors import InvalidJsonOp, InvalidJsonPath, InvalidJsonValue, UnknownTarget
from conference_controller.messages import MediaPermission, PatchOp, Permission
from conference_controller.outbox import Outbox, OutboxGap
from conference_controller.permissions import apply_patch
from rpc import ServiceError
from tests.support.fake_clock import FakeClock
from tests.support.waiting import wait_until


def test_outbox_numbers_from_one_and_replays_after_a_seq() -> None:
    outbox = Outbox(10, 60)
    assert [outbox.append("e", n) for n in range(3)] == [1, 2, 3]
    assert [m.seq for m in outbox.since(1)] == [2, 3]
    assert outbox.acked == 1 and len(outbox) == 2


def test_outbox_ack_trims_and_a_resume_behind_the_ack_is_no_gap() -> None:
    outbox = Outbox(10, 60)
    for n in range(4):
        outbox.append("e", n)
    outbox.ack(3)
    assert [m.seq for m in outbox.pending()] == [4]
    assert [m.seq for m in outbox.since(0)] == [4]
    outbox.ack(99)
    assert outbox.acked == 4 and len(outbox) == 0


def test_outbox_count_bound_evicts_the_oldest_and_reports_the_gap() -> None:
    outbox = Outbox(2, 60)
    for n in range(5):
        outbox.append("e", n)
    assert [m.seq for m in outbox.pending()] == [4, 5]
    with pytest.raises(OutboxGap) as info:
        outbox.since(1)
    assert (info.value.first, info.value.last) == (2, 3)
    assert [m.seq for m in outbox.since(3)] == [4, 5]


def test_outbox_age_bound() -> None:
    clock = FakeClock(0.0)
    outbox = Outbox(10, 5, clock=clock)
    outbox.append("e", 1)
    clock.now = 3
    outbox.append("e", 2)
    clock.now = 6
    with pytest.raises(OutboxGap):
        outbox.since(0)
    assert [m.seq for m in outbox.since(1)] == [2]


async def test_deduper_window_is_bounded() -> None:
    dedupe = Deduper(2)
    runs: list[str] = []

    async def act(tag: str) -> str:
        runs.append(tag)
        return tag

    for rid in ("a", "b", "a", "c", "a"):
        await dedupe.run(rid, lambda rid=rid: act(rid))  # type: ignore[misc]
    assert runs == ["a", "b", "c", "a"]
    assert len(dedupe) == 2


async def test_deduper_repeats_coded_errors_and_forgets_other_failures() -> None:
    dedupe = Deduper(8)
    calls = 0

    async def fail_coded() -> None:
        nonlocal calls
        calls += 1
        raise UnknownTarget("nope")

    async def crash() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    for _ in range(2):
        with pytest.raises(ServiceError) as info:
            await dedupe.run("x", fail_coded)
        assert info.value.code == "unknown_target"
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await dedupe.run("y", crash)
    assert calls == 3


def test_permission_patch_ops() -> None:
    base = Permission(publish=MediaPermission(True, True), subscribe=MediaPermission(True, True))
    patched = apply_patch(base, [PatchOp("replace", "/permission/publish", {"audio": False, "video": False}),
                                 PatchOp("replace", "/permission/subscribe/video", False)])
    assert patched == Permission(publish=MediaPermission(False, False), subscribe=MediaPermission(True, False))
    assert base.publish.audio is True
    with pytest.raises(InvalidJsonOp):
        apply_patch(base, [PatchOp("add", "/permission/publish", {})])
    with pytest.raises(InvalidJsonPath):
        apply_patch(base, [PatchOp("replace", "/permission/record", True)])
    with pytest.raises(InvalidJsonValue):
        apply_patch(base, [PatchOp("replace", "/permission/publish/audio", "yes")])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.sampled_from(["append", "ack", "since"]), st.integers(0, 30)),
                                   max_size=60))
def test_outbox_never_loses_or_repeats_unacked_messages(bound: int, ops: list[tuple[str, int]]) -> None:
    outbox = Outbox(bound, 1e9)
    sent: list[int] = []
    acked = 0
    for op, arg in ops:
        if op == "append":
            sent.append(outbox.append("e", arg))
        elif op == "ack":
            outbox.ack(arg)
            acked = max(acked, min(arg, len(sent)))
        else:
            seen = min(max(arg, acked), len(sent))
            first_kept = max(seen, len(sent) - bound) + 1
            try:
                got = [m.seq for m in outbox.since(arg)]
            except OutboxGap as gap:
                assert (gap.first, gap.last) == (seen + 1, first_kept - 1)
                continue
            assert first_kept == seen + 1
            assert got == list(range(seen + 1, len(sent) + 1))
            acked = seen
    assert sent == list(range(1, len(sent) + 1))


def test_outbox_keeps_a_message_for_exactly_max_age_then_drops_it() -> None:
    clock = FakeClock(0.0)
    outbox = Outbox(10, 5, clock=clock)
    outbox.append("e", 1)
    clock.now = 5.0
    assert [m.seq for m in outbox.pending()] == [1]  # max_age old: still kept
    clock.now = 5.5
    assert outbox.pending() == []
    # emptied by age, the outbox takes new messages again, numbered on
    assert outbox.append("e", 2) == 2
    assert [m.seq for m in outbox.pending()] == [2]


@pytest.mark.parametrize("bound", [0, 1])
def test_outbox_bound_below_one_keeps_one_message(bound: int) -> None:
    outbox = Outbox(bound, 60)
    outbox.append("e", 1)
    outbox.append("e", 2)
    assert [m.seq for m in outbox.pending()] == [2]


def test_outbox_gap_names_the_missing_range() -> None:
    assert str(OutboxGap(3, 7)) == "messages 3..7 are no longer kept"


_FULL = Permission(publish=MediaPermission(True, True), subscribe=MediaPermission(True, True))


def test_patch_ops_on_single_kinds_all_apply() -> None:
    patched = apply_patch(_FULL, [PatchOp("replace", "/permission/publish/audio", False),
                                  PatchOp("replace", "/permission/subscribe/video", False)])
    assert patched == Permission(publish=MediaPermission(False, True), subscribe=MediaPermission(True, False))


@pytest.mark.parametrize(
    ("op", "error", "message"),
    [
        (PatchOp("add", "/permission/publish", {}), InvalidJsonOp, "invalid json op 'add'"),
        (PatchOp("replace", "/other/publish", {"audio": True}), InvalidJsonPath, "invalid json path '/other/publish'"),
        (PatchOp("replace", "/permission/publishX", {"audio": True}), InvalidJsonPath,
         "invalid json path '/permission/publishX'"),
        (PatchOp("replace", "/permission/publish/colour", True), InvalidJsonPath,
         "invalid json path '/permission/publish/colour'"),
        (PatchOp("replace", "/permission/publish", True), InvalidJsonValue,
         "invalid json value for /permission/publish"),
        (PatchOp("replace", "/permission/publish/audio", "yes"), InvalidJsonValue,
         "invalid json value 'yes': expected a bool"),
    ],
)
def test_an_invalid_patch_op_is_refused_with_its_reason(op: PatchOp, error: type[ServiceError], message: str) -> None:
    with pytest.raises(error) as info:
        apply_patch(_FULL, [op])
    assert info.value.message == message


async def test_deduper_is_empty_until_its_first_request_id() -> None:
    dedupe = Deduper(5)
    assert len(dedupe) == 0
    assert await dedupe.run(None, _answer("x")) == "x"
    assert len(dedupe) == 0
    await dedupe.run("r1", _answer("y"))
    assert len(dedupe) == 1


@pytest.mark.parametrize("size", [0, 1])
async def test_deduper_window_below_one_keeps_one_id(size: int) -> None:
    dedupe = Deduper(size)
    runs: list[str] = []
    await dedupe.run("a", _answer("first a", runs))
    assert await dedupe.run("a", _answer("second a", runs)) == "first a"
    await dedupe.run("b", _answer("b", runs))
    assert await dedupe.run("a", _answer("third a", runs)) == "third a"  # "a" left the window of one
    assert runs == ["first a", "b", "third a"]


async def test_a_repeat_waiting_on_an_action_that_crashes_runs_it_again_and_is_remembered() -> None:
    dedupe = Deduper(5)
    release = asyncio.Event()
    runs: list[str] = []

    async def crashes() -> str:
        runs.append("crashes")
        await release.wait()
        raise RuntimeError("not a coded error")

    first = asyncio.create_task(dedupe.run("r1", crashes))
    await wait_until(lambda: runs == ["crashes"])
    repeat = asyncio.create_task(dedupe.run("r1", _answer("second", runs)))
    await asyncio.sleep(0)  # the repeat is waiting on the first outcome
    release.set()
    with pytest.raises(RuntimeError):
        await first
    assert await repeat == "second"
    # the retried action's outcome is the one remembered now
    assert await dedupe.run("r1", _answer("third", runs)) == "second"
    assert runs == ["crashes", "second"]


async def test_an_action_that_crashes_after_its_id_left_the_window_keeps_its_own_error() -> None:
    dedupe = Deduper(1)
    release = asyncio.Event()

    async def crashes() -> str:
        await release.wait()
        raise RuntimeError("the original failure")

    first = asyncio.create_task(dedupe.run("a", crashes))
    await asyncio.sleep(0)
    await dedupe.run("b", _answer("b"))  # pushes "a" out of the window of one
    release.set()
    with pytest.raises(RuntimeError, match="the original failure"):
        await first


def _answer(value: str, runs: list[str] | None = None) -> Callable[[], Awaitable[str]]:
    async def action() -> str:
        if runs is not None:
            runs.append(value)
        return value

    return action
