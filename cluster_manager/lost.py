"""Workers the registry dropped as lost, remembered for a while so operators still see them.

The registry forgets a worker the moment it is removed; the status page should go on showing it,
as ``lost``, for ``lost_worker_retention`` seconds (at most ``lost_worker_limit`` of them, the
oldest forgotten first).  A worker that joins again is no longer lost.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["LostWorkers"]


class LostWorkers:
    """The last view of each lost worker and when it was lost (monotonic ``clock`` seconds)."""

    def __init__(self, retention: float, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._retention = retention
        self._limit = limit
        self._clock = clock
        self._lost: OrderedDict[str, tuple[dict[str, Any], str, float]] = OrderedDict()

    def lost(self, view: dict[str, Any], reason: str) -> None:
        """The worker of ``view`` (a scheduler's worker view) was removed for ``reason``."""
        worker_id = view["id"]
        self._lost.pop(worker_id, None)
        self._lost[worker_id] = (view, reason, self._clock())
        while len(self._lost) > self._limit:
            self._lost.popitem(last=False)

    def back(self, worker_id: str) -> None:
        """``worker_id`` joined again."""
        self._lost.pop(worker_id, None)

    def views(self) -> list[tuple[dict[str, Any], str, float]]:
        """``(view, reason, seconds since it was lost)`` of every worker lost within the retention,
        the longest lost first."""
        now = self._clock()
        for worker_id in [w for w, (_, _, at) in self._lost.items() if now - at > self._retention]:
            del self._lost[worker_id]
        return [(view, reason, now - at) for view, reason, at in self._lost.values()]
