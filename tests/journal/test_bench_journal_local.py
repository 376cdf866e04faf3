"""``bench.journal_local`` runs once at a tiny size, so the bench code cannot rot (records nothing)."""

from __future__ import annotations

from pathlib import Path

from bench import journal_local


def test_the_journal_bench_runs_at_a_tiny_size() -> None:
    assert journal_local.main(["--tiny"]) == 0


async def test_the_file_prototype_replays_what_it_appended(tmp_path: Path) -> None:
    log = journal_local.FileLog(tmp_path / "log")
    await log.open()
    try:
        first = await log.append("a", 1, b"one")
        await log.append("b", 1, b"other room")
        second = await log.append("a", 2, b"two")
        assert [(r.offset, r.epoch, r.body) for r in await log.replay("a")] == [(first, 1, b"one"), (second, 2, b"two")]
        assert [r.body for r in await log.replay("a", after=first)] == [b"two"]
    finally:
        await log.close()
