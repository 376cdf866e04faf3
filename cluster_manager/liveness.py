"""Which workers have missed too many liveness sweeps (OWT's ``alive_count``), without I/O."""

from __future__ import annotations

__all__ = ["LivenessTracker"]


class LivenessTracker:
    """Counts the sweeps each worker missed since its last keepalive.

    :param max_missed: a worker is dead once its missed count EXCEEDS this (OWT:
        ``check_alive_count``).
    """

    def __init__(self, max_missed: int) -> None:
        self.max_missed = max_missed
        self._missed: dict[str, int] = {}

    def track(self, worker_id: str) -> None:
        """Start (or restart) counting for ``worker_id`` from zero."""
        self._missed[worker_id] = 0

    def forget(self, worker_id: str) -> None:
        """Stop counting for ``worker_id`` (it left or was removed)."""
        self._missed.pop(worker_id, None)

    def seen(self, worker_id: str) -> bool:
        """A keepalive from ``worker_id``: reset its count; ``False`` if it is not tracked."""
        if worker_id not in self._missed:
            return False
        self._missed[worker_id] = 0
        return True

    def missed(self, worker_id: str) -> int:
        """Sweeps missed in a row by ``worker_id`` (0 if not tracked)."""
        return self._missed.get(worker_id, 0)

    def sweep(self) -> list[str]:
        """Count one more missed sweep for every worker; return (and forget) those now dead."""
        dead: list[str] = []
        for worker_id, missed in self._missed.items():
            missed += 1
            self._missed[worker_id] = missed
            if missed > self.max_missed:
                dead.append(worker_id)
        for worker_id in dead:
            del self._missed[worker_id]
        return dead

    def __len__(self) -> int:
        return len(self._missed)
