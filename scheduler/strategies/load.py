"""Load-ranked strategies: ``least-used`` and ``most-used``.

Both rank by *effective* load (reported load plus the load of reservations not yet picked up).
``least-used`` spreads work and, unlike OWT's, always returns a candidate when there is one, even
when every load is at or above 1.0.  ``most-used`` packs work; ties go to the later-joined worker,
as in OWT.

The index is a binary heap with lazy deletion: every change of a candidate's effective load pushes
a fresh entry tagged with the record's ``version``; entries whose version is stale, or whose worker
is no longer a candidate, are dropped when they reach the top.  A pick is O(log n) amortised.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from ..records import WorkerRecord
from .base import CandidateIndex, Strategy

__all__ = ["LeastUsed", "MostUsed", "LoadHeapIndex"]

_Entry = tuple[float, int, int, WorkerRecord]


class LoadHeapIndex(CandidateIndex):
    """Candidates ordered by effective load (``sign`` = 1: lowest first; -1: highest first)."""

    __slots__ = ("_heap", "_sign")

    def __init__(self, sign: int) -> None:
        super().__init__()
        self._heap: list[_Entry] = []
        self._sign = sign

    def _push(self, w: WorkerRecord) -> None:
        sign = self._sign
        heapq.heappush(self._heap, (sign * w.effective_load, sign * w.join_seq, w.version, w))
        if len(self._heap) > 2 * self.count + 64:
            self._compact()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[3].candidate and e[3].version == e[2]]
        heapq.heapify(self._heap)

    def entered(self, worker: WorkerRecord) -> None:
        self.count += 1
        self._push(worker)

    def load_changed(self, worker: WorkerRecord) -> None:
        self._push(worker)

    def pick(self, now: float) -> WorkerRecord | None:
        heap = self._heap
        while heap:
            _, _, version, w = heap[0]
            if w.candidate and w.version == version:
                return w
            heapq.heappop(heap)
        return None


class LeastUsed(Strategy):
    """The candidate with the lowest effective load; ties go to the earlier-joined worker."""

    name = "least-used"

    def pick(self, candidates: Sequence[WorkerRecord], now: float) -> WorkerRecord:
        return min(candidates, key=lambda w: (w.effective_load, w.join_seq))

    def new_index(self) -> CandidateIndex:
        return LoadHeapIndex(1)


class MostUsed(Strategy):
    """The candidate with the highest effective load; ties go to the later-joined worker."""

    name = "most-used"

    def pick(self, candidates: Sequence[WorkerRecord], now: float) -> WorkerRecord:
        return max(candidates, key=lambda w: (w.effective_load, w.join_seq))

    def new_index(self) -> CandidateIndex:
        return LoadHeapIndex(-1)
