"""A ``sleep=`` for code with timer loops: every sleep waits until the test lets it through.

Each loop is a task that sleeps, works, sleeps again.  :meth:`SteppedSleep.step` wakes the task
asleep for a given delay and returns once that task is asleep again (or has ended): one call is
one turn of the loop, however long its work takes, and no real time passes.  Delays name the
loops, so the code under test should be given a different delay per loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["SteppedSleep"]


class SteppedSleep:
    """Sleeps that end when the test says.  ``asked`` lists every delay asked for, in order.

    ``guard`` (seconds) bounds each wait for a task to fall asleep, so a loop that never sleeps
    again fails the test instead of hanging it; it is never reached by a working loop.
    """

    def __init__(self, *, guard: float = 5.0) -> None:
        self.guard = guard
        self.asked: list[float] = []
        self._asleep: dict[asyncio.Task[object], tuple[float, asyncio.Future[None]]] = {}
        self._changed = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.asked.append(seconds)
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._asleep[task] = (seconds, wake)
        self._notify()
        try:
            await wake
        finally:
            self._asleep.pop(task, None)
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def sleeping(self) -> list[float]:
        """The delays the tasks now asleep asked for, sorted."""
        return sorted(seconds for seconds, _ in self._asleep.values())

    async def until(self, ready: Callable[[], bool], what: str) -> None:
        """Return once ``ready()`` holds, checked whenever a task falls asleep or wakes."""
        async def wait() -> None:
            while not ready():
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), self.guard)
        except TimeoutError:
            raise AssertionError(f"no task {what} (asleep: {self.sleeping()})") from None

    def _task_asleep_for(self, seconds: float) -> asyncio.Task[object] | None:
        found = [task for task, (asked, _) in self._asleep.items() if asked == seconds]
        assert len(found) <= 1, f"{len(found)} tasks asleep for {seconds} s: give each loop its own delay"
        return found[0] if found else None

    async def asleep(self, seconds: float) -> None:
        """Return once a task is asleep for ``seconds``."""
        await self.until(lambda: self._task_asleep_for(seconds) is not None, f"fell asleep for {seconds} s")

    async def step(self, seconds: float, turns: int = 1) -> float | None:
        """Wake the task asleep for ``seconds``, ``turns`` times in a row; the delay it then sleeps
        for (``None`` when it ended)."""
        await self.asleep(seconds)
        task = self._task_asleep_for(seconds)
        assert task is not None
        now: float | None = seconds
        for turn in range(turns):
            assert now == seconds, f"turn {turn + 1}: the task sleeps for {now} s, not {seconds} s"
            _, wake = self._asleep.pop(task)
            wake.set_result(None)
            self._notify()
            await self.until(lambda: task in self._asleep or task.done(), f"took its next sleep after {seconds} s")
            now = self._asleep[task][0] if task in self._asleep else None
        return now
