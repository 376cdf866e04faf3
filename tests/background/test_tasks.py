"""The one owner of a component's background tasks: failures logged once through the component's
log, ``wait`` lets the running ones end, ``stop`` lets them finish within its grace and cancels the
rest, and nothing spawned after it runs."""

from __future__ import annotations

import asyncio

import pytest

from background import Background
from eventlog import EventLog


class _TestLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.tests.background"


async def _fail() -> None:
    raise ValueError("boom")


async def test_a_failed_task_is_logged_once_through_the_components_log_and_a_cancelled_one_not(
        caplog: pytest.LogCaptureFixture) -> None:
    background = Background(_TestLog())
    failed = background.spawn(_fail(), "failing")
    forever = background.spawn(asyncio.Event().wait(), "forever")
    await asyncio.wait([failed])
    forever.cancel()
    await asyncio.wait([forever])
    logged = [r for r in caplog.records if r.name == _TestLog.LOGGER]
    assert [r.getMessage() for r in logged] == ["background_task_failed task=failing"]
    assert logged[0].exc_info is not None and isinstance(logged[0].exc_info[1], ValueError)
    assert len(background) == 0  # both forgotten once done


async def test_wait_lets_the_running_tasks_end_by_themselves() -> None:
    background = Background(_TestLog())
    release = asyncio.Event()
    ended: list[str] = []

    async def work() -> None:
        await release.wait()
        ended.append("work")

    task = background.spawn(work(), "work")
    waiting = asyncio.ensure_future(background.wait())
    await asyncio.sleep(0)
    assert not waiting.done() and len(background) == 1
    release.set()
    await waiting
    assert ended == ["work"] and not task.cancelled()


async def test_stop_lets_tasks_finish_within_its_grace_and_refuses_later_spawns() -> None:
    background = Background(_TestLog())
    ran: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0)
        ran.append("quick")

    async def late() -> None:
        ran.append("late")

    quick_task = background.spawn(quick(), "quick")
    await background.stop(grace=60.0)  # returns once quick is done
    assert quick_task.done() and not quick_task.cancelled()
    refused = background.spawn(late(), "late")
    await asyncio.wait([refused])
    assert refused.cancelled() and ran == ["quick"] and len(background) == 0
    await background.stop()  # idempotent


async def test_stop_without_grace_cancels_what_runs_and_waits_for_it() -> None:
    background = Background(_TestLog())
    cleaned: list[str] = []

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("stuck")

    task = background.spawn(stuck(), "stuck")
    await asyncio.sleep(0)  # let it start (a loop turn, not a wait for time)
    await background.stop()
    assert task.cancelled() and cleaned == ["stuck"] and len(background) == 0
