"""Candidate pools: the workers that pass one matcher query, indexed for one strategy.

A pool is keyed by ``(hard, soft)`` from a :class:`~scheduler.matchers.Query` (``soft`` is ``None``
for the pool of everything passing ``hard``).  Its membership depends only on the workers'
declared capacity, so it changes only when workers join or leave; which members are *candidates*
right now is tracked by the strategy's :class:`~scheduler.strategies.CandidateIndex`.

Pools are built on first use (one scan of the workers) and kept in a bounded LRU cache, so a
stream of odd preferences cannot grow memory or slow down load updates without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable

from .matchers import Matcher
from .records import WorkerRecord
from .strategies import CandidateIndex

__all__ = ["Pool", "PoolCache", "PoolKey"]

PoolKey = tuple[Hashable, Hashable]


class Pool:
    """The members passing one query, and the strategy index over those that are candidates."""

    __slots__ = ("key", "members", "index")

    def __init__(self, key: PoolKey, index: CandidateIndex) -> None:
        self.key = key
        self.members: dict[WorkerRecord, None] = {}
        self.index = index

    def add(self, worker: WorkerRecord) -> None:
        """Make ``worker`` a member (and a candidate in the index if it is one)."""
        self.members[worker] = None
        worker.pools[self.key] = self
        if worker.candidate:
            self.index.entered(worker)

    def discard(self, worker: WorkerRecord) -> None:
        """Drop ``worker``, which must no longer be a candidate (so the index has let it go)."""
        assert not worker.candidate, "withdraw a worker's candidacy before it leaves a pool"
        self.members.pop(worker, None)
        worker.pools.pop(self.key, None)

    def ordered_members(self) -> list[WorkerRecord]:
        """Members in join order."""
        return sorted(self.members, key=lambda w: w.join_seq)


class PoolCache:
    """Pools by key, built on demand from the current workers, least recently used evicted."""

    __slots__ = ("_pools", "_matcher", "_new_index", "_limit")

    def __init__(self, matcher: Matcher, new_index: Callable[[], CandidateIndex], limit: int) -> None:
        self._pools: OrderedDict[PoolKey, Pool] = OrderedDict()
        self._matcher = matcher
        self._new_index = new_index
        self._limit = max(4, limit)

    def __len__(self) -> int:
        return len(self._pools)

    def belongs(self, key: PoolKey, worker: WorkerRecord) -> bool:
        """Does ``worker`` pass the query ``key``?"""
        hard, soft = key
        capacity = worker.capacity
        matcher = self._matcher
        if not matcher.accepts(hard, capacity):
            return False
        return soft is None or matcher.prefers(soft, capacity)

    def get(self, key: PoolKey, workers: Iterable[WorkerRecord]) -> Pool:
        """The pool for ``key``, built from ``workers`` (in join order) if not cached."""
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        pool = Pool(key, self._new_index())
        for worker in workers:
            if self.belongs(key, worker):
                pool.add(worker)
        self._pools[key] = pool
        if len(self._pools) > self._limit:
            _, evicted = self._pools.popitem(last=False)
            for worker in list(evicted.members):
                worker.pools.pop(evicted.key, None)
        return pool

    def join(self, worker: WorkerRecord) -> None:
        """Add a new (or re-declared) worker to every cached pool it belongs to."""
        for key, pool in self._pools.items():
            if self.belongs(key, worker):
                pool.add(worker)

    def leave(self, worker: WorkerRecord) -> None:
        """Remove ``worker`` (no longer a candidate) from every pool it belongs to."""
        for pool in list(worker.pools.values()):
            pool.discard(worker)
