"""The strategy interface and the per-pool candidate index it builds.

A :class:`Strategy` chooses one worker among candidates.  It has two faces:

* :meth:`Strategy.pick` takes the candidates as a list (in join order) and is the small,
  obvious definition of the strategy — LiveKit's ``SelectNode(nodes)``.  The scheduler uses it on
  its rare slow path.
* :meth:`Strategy.new_index` returns a :class:`CandidateIndex`, a structure the scheduler keeps per
  candidate pool and updates incrementally, so that the common path chooses without scanning
  every worker.  An index must choose as :meth:`Strategy.pick` would (ties and the order of
  rotation may differ where documented).

Indexes are lazy where that keeps updates O(1) or O(log n): they hold stale entries and drop them
when met, using the worker record's ``candidate``/``epoch``/``version`` fields to tell.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from ..records import WorkerRecord

__all__ = ["Strategy", "CandidateIndex"]


class CandidateIndex(ABC):
    """The candidates of one pool, organised for one strategy.

    The scheduler calls :meth:`entered` when a member becomes a candidate, :meth:`left` when it
    stops being one (including removal), and :meth:`load_changed` when a candidate's effective
    load changes.  Pool membership itself never changes for a given worker record.
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    @abstractmethod
    def entered(self, worker: WorkerRecord) -> None:
        """``worker`` is now a candidate (an index adds 1 to ``count``)."""

    def left(self, worker: WorkerRecord) -> None:
        """``worker`` is no longer a candidate (full, unavailable, drained or removed)."""
        self.count -= 1

    def load_changed(self, worker: WorkerRecord) -> None:
        """A candidate's effective load changed; default: nothing to do."""

    @abstractmethod
    def pick(self, now: float) -> WorkerRecord | None:
        """The chosen candidate, or ``None`` when the pool has no candidate."""


class Strategy(ABC):
    """Chooses one worker among candidates; stateful strategies keep their state per index."""

    name: ClassVar[str]

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random()

    @abstractmethod
    def pick(self, candidates: Sequence[WorkerRecord], now: float) -> WorkerRecord:
        """Choose one of ``candidates`` (non-empty, in join order)."""

    @abstractmethod
    def new_index(self) -> CandidateIndex:
        """A fresh incremental index for one candidate pool."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
