"""Whether a cluster manager is in service yet: the freshman window after a start with no state.

A manager started with no state (a first start, or a restart) is ``initializing`` for
``initial_time`` seconds, while its workers rejoin and re-report their tasks; one that starts from
state (restored, or a standby's copy) is ``in-service`` at once.  :class:`FreshmanWindow` owns when
the manager started and when it is ready, and logs ``manager_in_service`` once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from contracts.cluster import IN_SERVICE, INITIALIZING

from .eventlog import log_event

__all__ = ["FreshmanWindow"]


class FreshmanWindow:
    """The manager ``name``'s service state on ``clock`` (seconds, monotonic).

    :param initial_time: how long a start with no state stays ``initializing``.
    """

    def __init__(self, name: str, initial_time: float, *, clock: Callable[[], float]) -> None:
        self._name = name
        self._initial_time = initial_time
        self._clock = clock
        self._started_at: float | None = None
        self._ready_at: float | None = None
        #: Whether ``manager_in_service`` was logged.
        self._announced = False

    def open(self, fresh: bool) -> None:
        """The manager starts now: ``initializing`` for ``initial_time`` if ``fresh``, else in service."""
        now = self._clock()
        self._started_at = now
        self._ready_at = now + self._initial_time if fresh else now

    @property
    def state(self) -> str:
        """``'initializing'`` during the freshman window (and before :meth:`open`), else ``'in-service'``."""
        if self._ready_at is not None and self._clock() >= self._ready_at:
            return IN_SERVICE
        return INITIALIZING

    def ready_in(self) -> float:
        """Seconds until the manager is in service (``initial_time`` before :meth:`open`)."""
        if self._ready_at is None:
            return self._initial_time
        return max(0.0, self._ready_at - self._clock())

    def uptime(self) -> float:
        """Seconds since :meth:`open` (0 before)."""
        if self._started_at is None:
            return 0.0
        return max(0.0, self._clock() - self._started_at)

    def announce(self, workers: int) -> None:
        """Log the end of the window, once (the liveness sweep asks every interval)."""
        if not self._announced and self.state == IN_SERVICE:
            self._announced = True
            log_event(logging.INFO, "manager_in_service", name=self._name, workers=workers)
