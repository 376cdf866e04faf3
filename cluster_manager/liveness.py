"""Which workers have missed too many liveness sweeps (OWT's ``alive_count``), without I/O.

Sweeps only count while the manager can hear its workers: while it has lost the broker itself
(:meth:`LivenessTracker.deaf`) they count nothing, and once it has the broker back
(:meth:`LivenessTracker.hearing_again`) every count restarts from zero and the sweeps of a grace
period count nothing either, so that every worker has time to report again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["LivenessTracker"]


class LivenessTracker:
    """Counts the sweeps each worker missed since its last keepalive.

    :param max_missed: a worker is dead once its missed count EXCEEDS this (OWT:
        ``check_alive_count``).
    :param clock: seconds, monotonic; measures the grace period after a reconnection.
    """

    def __init__(self, max_missed: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_missed = max_missed
        self._clock = clock
        self._missed: dict[str, int] = {}
        #: When each tracked worker joined or last kept alive (``clock`` seconds).
        self._seen_at: dict[str, float] = {}
        self._deaf = False
        self._grace_until: float | None = None

    def track(self, worker_id: str) -> None:
        """Start (or restart) counting for ``worker_id`` from zero."""
        self._missed[worker_id] = 0
        self._seen_at[worker_id] = self._clock()

    def forget(self, worker_id: str) -> None:
        """Stop counting for ``worker_id`` (it left or was removed)."""
        self._missed.pop(worker_id, None)
        self._seen_at.pop(worker_id, None)

    def seen(self, worker_id: str) -> bool:
        """A keepalive from ``worker_id``: reset its count; ``False`` if it is not tracked."""
        if worker_id not in self._missed:
            return False
        self._missed[worker_id] = 0
        self._seen_at[worker_id] = self._clock()
        return True

    def keepalive_age(self, worker_id: str) -> float | None:
        """Seconds since ``worker_id`` joined or last kept alive (``None`` if not tracked)."""
        at = self._seen_at.get(worker_id)
        return None if at is None else max(0.0, self._clock() - at)

    def missed(self, worker_id: str) -> int:
        """Sweeps missed in a row by ``worker_id`` (0 if not tracked)."""
        return self._missed.get(worker_id, 0)

    def deaf(self) -> None:
        """The manager lost the broker: no sweep counts until :meth:`hearing_again`."""
        self._deaf = True

    def hearing_again(self, grace: float) -> None:
        """The manager has the broker back: every count restarts from zero, and sweeps count
        nothing for ``grace`` seconds from now."""
        self._deaf = False
        for worker_id in self._missed:
            self._missed[worker_id] = 0
        self._grace_until = self._clock() + grace

    @property
    def counting(self) -> bool:
        """Whether a sweep now would count (not deaf, no grace period running)."""
        if self._deaf:
            return False
        if self._grace_until is not None:
            if self._clock() < self._grace_until:
                return False
            self._grace_until = None
        return True

    def sweep(self) -> list[str]:
        """Count one more missed sweep for every worker; return (and forget) those now dead.
        While not :attr:`counting`, nothing is counted and nobody is dead."""
        if not self.counting:
            return []
        dead: list[str] = []
        for worker_id, missed in self._missed.items():
            missed += 1
            self._missed[worker_id] = missed
            if missed > self.max_missed:
                dead.append(worker_id)
        for worker_id in dead:
            del self._missed[worker_id]
            self._seen_at.pop(worker_id, None)
        return dead

    def __len__(self) -> int:
        return len(self._missed)
