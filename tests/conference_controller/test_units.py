"""Outbox, dedupe window and permission patches on their own."""

from __future__ import annotations

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
