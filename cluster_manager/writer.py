"""The registry's one writer: every decided change of an active cluster manager goes through here.

The manager's handlers, the admin's ``drain``, the removals of the :mod:`~cluster_manager.reaper`
and the placements of the :mod:`~cluster_manager.failover` decide; :class:`RegistryWriter` applies
each outcome to the :class:`~cluster_manager.registry.Registry` and hands the same change to the
:class:`~cluster_manager.replication.ChangeFeed` (the standbys), so no change reaches one and not
the other.  It keeps no state of its own.
"""

from __future__ import annotations

from scheduler import Scheduler, SchedulerError

from .changes import AnyChange, TaskReserved
from .errors import from_scheduler_error, unknown_worker
from .registry import Registry
from .replication import ChangeFeed

__all__ = ["RegistryWriter"]


class RegistryWriter:
    """Applies changes to ``registry`` and appends them to ``feed`` (``None``: no replication)."""

    def __init__(self, registry: Registry, feed: ChangeFeed | None) -> None:
        self.registry = registry
        self._feed = feed

    def apply(self, change: AnyChange) -> list[str]:
        """Apply a decided change to the registry and hand it to the standbys; returns the tasks it
        repealed."""
        repealed = self.registry.apply(change)
        if self._feed is not None:
            self._feed.append(change)
        return repealed

    def commit(self, method: str, change: AnyChange) -> list[str]:
        """:meth:`apply`, with a scheduler error turned into the RPC error of ``method``."""
        try:
            return self.apply(change)
        except SchedulerError as exc:
            raise from_scheduler_error(method, exc) from None

    def place(self, purpose: str, task: str, preference: object, reserve_time: float | None) -> str:
        """Choose a worker for ``task`` (sticky if mapped) and reserve it there; raises ``SchedulerError``."""
        worker_id = self.registry.choose(purpose, task, preference)
        self.apply(TaskReserved(purpose, task, worker_id, self.registry.reserve_time(reserve_time)))
        return worker_id

    def scheduler_of(self, worker_id: str, purpose: str | None = None) -> Scheduler:
        """The scheduler of a registered worker (of ``purpose``, when given), the check most changes
        start with; ``unknown_worker`` otherwise."""
        scheduler = self.registry.scheduler_of(worker_id, purpose)
        if scheduler is None:
            raise unknown_worker(worker_id, purpose)
        return scheduler
