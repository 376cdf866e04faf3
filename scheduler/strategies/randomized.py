"""Random strategies: ``randomly-pick`` and ``two-choices``.

``two-choices`` is the power of two random choices: sample two distinct candidates uniformly and
take the one with the lower effective load (the first sampled on a tie).  It spreads almost as
well as ``least-used`` without herding a burst onto one worker between load reports.

The index is an array of the current candidates with a position map, so that entering, leaving
and sampling are all O(1).  Randomness comes from the strategy's ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..records import WorkerRecord
from .base import CandidateIndex, Strategy

__all__ = ["RandomlyPick", "TwoChoices", "CandidateArray"]


class CandidateArray(CandidateIndex):
    """The candidates in an array, sampled with ``rng``; ``choices`` = how many to compare."""

    __slots__ = ("_items", "_pos", "_rng", "_choices")

    def __init__(self, rng: random.Random, choices: int) -> None:
        super().__init__()
        self._items: list[WorkerRecord] = []
        self._pos: dict[WorkerRecord, int] = {}
        self._rng = rng
        self._choices = choices

    def entered(self, worker: WorkerRecord) -> None:
        self.count += 1
        self._pos[worker] = len(self._items)
        self._items.append(worker)

    def left(self, worker: WorkerRecord) -> None:
        self.count -= 1
        i = self._pos.pop(worker)
        last = self._items.pop()
        if last is not worker:
            self._items[i] = last
            self._pos[last] = i

    def pick(self, now: float) -> WorkerRecord | None:
        items = self._items
        n = len(items)
        if n == 0:
            return None
        if self._choices == 1 or n == 1:
            return items[self._rng.randrange(n)]
        return _better_of_two(items, self._rng)


def _better_of_two(items: Sequence[WorkerRecord], rng: random.Random) -> WorkerRecord:
    n = len(items)
    i = rng.randrange(n)
    j = rng.randrange(n - 1)
    if j >= i:
        j += 1
    a, b = items[i], items[j]
    return b if b.effective_load < a.effective_load else a


class RandomlyPick(Strategy):
    """A uniformly random candidate."""

    name = "randomly-pick"

    def pick(self, candidates: Sequence[WorkerRecord], now: float) -> WorkerRecord:
        return candidates[self.rng.randrange(len(candidates))]

    def new_index(self) -> CandidateIndex:
        return CandidateArray(self.rng, 1)


class TwoChoices(Strategy):
    """The less loaded of two distinct, uniformly sampled candidates."""

    name = "two-choices"

    def pick(self, candidates: Sequence[WorkerRecord], now: float) -> WorkerRecord:
        if len(candidates) == 1:
            return candidates[0]
        return _better_of_two(candidates, self.rng)

    def new_index(self) -> CandidateIndex:
        return CandidateArray(self.rng, 2)
