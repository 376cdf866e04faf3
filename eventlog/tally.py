"""Counts of the unexpected exceptions each component logged, since the process started."""

from __future__ import annotations

from collections import Counter

__all__ = ["UnhandledTally", "unhandled"]


class UnhandledTally:
    """Exceptions logged by :meth:`eventlog.EventLog.exception`, by component.  Only that method
    writes it; ``/metrics`` reads it (``switchboard_unhandled_exceptions_total{component}``)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def count(self, component: str) -> None:
        self._counts[component] += 1

    def counts(self) -> dict[str, int]:
        return dict(self._counts)


#: The process's tally (one per process, like the process's CPU and memory metrics).
unhandled = UnhandledTally()
