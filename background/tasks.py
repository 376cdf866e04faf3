"""Tasks one component runs on the side, ended together by its stop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from eventlog import EventLog

__all__ = ["Background"]


class Background:
    """The tasks one component runs on the side (best-effort calls, timers' work, hand-overs).

    Each task that fails is logged once through the component's ``log`` (``background_task_failed``,
    counted as an unexpected exception); a cancelled one is not.  :meth:`stop` ends them all; a task
    spawned after it is cancelled before it runs.  Where a component bounds how many may run at
    once, it compares ``len(background)`` with its setting before it spawns (and drops, or does
    something cheaper, when full)."""

    __slots__ = ("_log", "_tasks", "_stopped")

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run ``coro`` as a task; it starts on the next loop iteration (after what the caller does
        without yielding, e.g. a Socket.IO handler queueing its ack)."""
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        if self._stopped:
            task.cancel()  # its coroutine is closed at its first step: nothing of it runs
            return task
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.exception("background_task_failed", task=task.get_name(), exc_info=task.exception())

    async def wait(self) -> None:
        """Wait for the tasks running now to end by themselves (none is cancelled)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self, grace: float = 0.0) -> None:
        """Let the tasks finish within ``grace`` seconds (those they spawn meanwhile too), then cancel
        what is left and wait for it; later spawns never run.  Idempotent."""
        if self._tasks and grace > 0 and not self._stopped:
            await asyncio.wait(list(self._tasks), timeout=grace)
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
