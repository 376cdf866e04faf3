"""Rotating strategies: ``last-used``, ``round-robin`` and ``weight-robin``.

* ``last-used`` keeps returning the previously chosen worker while it is still a candidate, and
  otherwise takes the earliest-joined candidate (OWT's default for portal, conference and webrtc:
  it fills one worker, then moves on).  Because reservations count toward effective load, a
  worker stops being a candidate once its reservations fill it, so a burst moves on too.
* ``round-robin`` cycles through the candidates.  The index keeps a rotation queue: a worker that
  becomes a candidate again (after being full, unavailable or drained) rejoins at the back of the
  rotation rather than at its join position; the scan form follows OWT exactly (the next
  candidate after the last chosen one, in join order, wrapping around).
* ``weight-robin`` is nginx's smooth weighted round-robin with weight ``floor((1 - load) * 100)``
  (at least 1).  It is O(candidates) per pick by nature; use it for small pools.

Each index keeps its own state, so the rotation is per pool (per ISP/region query).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence

from ..records import WorkerRecord
from .base import CandidateIndex, Strategy

__all__ = [
    "LastUsed",
    "RoundRobin",
    "WeightRobin",
    "LastUsedIndex",
    "RoundRobinIndex",
    "WeightRobinIndex",
    "weight_of",
]


class LastUsedIndex(CandidateIndex):
    """The last chosen worker, and the candidates ordered by join sequence (lazy heap).

    The last chosen worker is remembered with its ``epoch``: once it stops being a candidate it is
    not returned again until chosen afresh (it may have left this pool meanwhile).
    """

    __slots__ = ("_heap", "_last", "_last_epoch")

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[int, int, WorkerRecord]] = []
        self._last: WorkerRecord | None = None
        self._last_epoch = -1

    def entered(self, worker: WorkerRecord) -> None:
        self.count += 1
        heapq.heappush(self._heap, (worker.join_seq, worker.epoch, worker))
        if len(self._heap) > 2 * self.count + 64:
            self._heap = [e for e in self._heap if e[2].candidate and e[2].epoch == e[1]]
            heapq.heapify(self._heap)

    def pick(self, now: float) -> WorkerRecord | None:
        last = self._last
        if last is not None and last.candidate and last.epoch == self._last_epoch:
            return last
        heap = self._heap
        while heap:
            _, epoch, w = heap[0]
            if w.candidate and w.epoch == epoch:
                self._last, self._last_epoch = w, epoch
                return w
            heapq.heappop(heap)
        self._last = None
        return None


class LastUsed(Strategy):
    """The previously chosen worker while it is a candidate, else the earliest-joined candidate."""

    name = "last-used"

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self._last: WorkerRecord | None = None

    def pick(self, candidates: Sequence[WorkerRecord], now: float) -> WorkerRecord:
        last = self._last
        if last is None or not any(c is last for c in candidates):
            last = self._last = candidates[0]
        return last

    def new_index(self) -> CandidateIndex:
        return LastUsedIndex()


class RoundRobinIndex(CandidateIndex):
    """A rotation queue of ``(epoch, worker)``; stale entries are dropped when they come round."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[tuple[int, WorkerRecord]] = deque()

    def entered(self, worker: WorkerRecord) -> None:
        self.count += 1
        self._queue.append((worker.epoch, worker))
        if len(self._queue) > 2 * self.count + 64:
            self._queue = deque(e for e in self._queue if e[1].candidate and e[1].epoch == e[0])

    def pick(self, now: float) -> WorkerRecord | None:
        queue = self._queue
        while queue:
            entry = queue.popleft()
            w = entry[1]
            if w.candidate and w.epoch == entry[0]:
                queue.append(entry)
                return w
        return None


class RoundRobin(Strategy):
    """The next candidate after the last chosen one, in join order, wrapping around."""

    name = "round-robin"

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self._last_seq = -1

    def pick(self, candidates: Sequence[WorkerRecord], now: float) -> WorkerRecord:
        chosen = next((c for c in candidates if c.join_seq > self._last_seq), candidates[0])
        self._last_seq = chosen.join_seq
        return chosen

    def new_index(self) -> CandidateIndex:
        return RoundRobinIndex()


def weight_of(worker: WorkerRecord) -> int:
    """``floor((1 - effective load) * 100)``, at least 1 so that every candidate gets a turn."""
    load = worker.effective_load
    if not math.isfinite(load):
        return 1
    return max(1, math.floor((1.0 - load) * 100))


def _smooth_weighted(candidates: Sequence[WorkerRecord], current: dict[WorkerRecord, int]) -> WorkerRecord:
    total = 0
    best: WorkerRecord | None = None
    best_weight = 0
    for w in candidates:
        weight = weight_of(w)
        total += weight
        value = current.get(w, 0) + weight
        current[w] = value
        if best is None or value > best_weight:
            best, best_weight = w, value
    assert best is not None
    current[best] = best_weight - total
    return best


class WeightRobinIndex(CandidateIndex):
    """The candidates with their current smooth-WRR weights (insertion ordered)."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        super().__init__()
        self._current: dict[WorkerRecord, int] = {}

    def entered(self, worker: WorkerRecord) -> None:
        self.count += 1
        self._current[worker] = 0

    def left(self, worker: WorkerRecord) -> None:
        self.count -= 1
        self._current.pop(worker, None)

    def pick(self, now: float) -> WorkerRecord | None:
        if not self._current:
            return None
        return _smooth_weighted(list(self._current), self._current)


class WeightRobin(Strategy):
    """Smooth weighted round-robin, weight ``floor((1 - load) * 100)``."""

    name = "weight-robin"

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self._current: dict[WorkerRecord, int] = {}

    def pick(self, candidates: Sequence[WorkerRecord], now: float) -> WorkerRecord:
        alive = set(candidates)
        for w in [w for w in self._current if w not in alive]:
            del self._current[w]
        return _smooth_weighted(candidates, self._current)

    def new_index(self) -> CandidateIndex:
        return WeightRobinIndex()
