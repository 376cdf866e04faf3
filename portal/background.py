"""Tasks the portal starts on the side (post-ack work, holds, disconnects), all ended by ``stop``."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from .logs import EventLog

__all__ = ["Background"]

log = EventLog()


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run ``coro`` as a task; it starts on the next loop iteration (after the current handler's
        ack was queued, which python-socketio does without yielding)."""
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.exception("background_task_failed", task=task.get_name(), exc_info=task.exception())

    async def stop(self, grace: float = 0.0) -> None:
        """Let running tasks finish within ``grace`` seconds, then cancel the rest."""
        tasks = list(self._tasks)
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
