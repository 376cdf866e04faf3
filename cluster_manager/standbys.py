"""Who the standby cluster managers are, for operators.

The active manager never hears from its standbys otherwise (they only follow its change feed), so
each :class:`~cluster_manager.node.ManagerNode` that is a standby publishes a
:class:`StandbyNotice` on :func:`standbys_topic` every ``standby_announce_interval``; every node
keeps the notices it hears on a :class:`StandbyBoard`, which forgets a node not heard from for
``standby_expiry`` seconds.  The active one reads it for the admin method ``overview``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from contracts.admin import ManagerView

__all__ = ["StandbyNotice", "StandbyBoard", "standbys_topic"]


def standbys_topic(name: str) -> str:
    """The event topic the standbys of the cluster manager ``name`` announce themselves on."""
    return f"cluster.{name}.standbys"


class StandbyNotice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """"I am a standby of this cluster manager": its transport's node id, whether it holds a copy of
    the registry, and the leader epoch of that copy."""

    node: str
    synced: bool
    epoch: int


class StandbyBoard:
    """The standbys heard from within ``expiry`` seconds (at most ``limit``; the longest unheard
    is forgotten first)."""

    def __init__(self, expiry: float, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._expiry = expiry
        self._limit = limit
        self._clock = clock
        self._heard: dict[str, tuple[StandbyNotice, float]] = {}

    def heard(self, notice: StandbyNotice) -> None:
        self._heard.pop(notice.node, None)
        self._heard[notice.node] = (notice, self._clock())
        while len(self._heard) > self._limit:
            del self._heard[next(iter(self._heard))]

    def views(self, *, exclude: str) -> list[ManagerView]:
        """The standbys heard from lately, leaving out the node ``exclude`` (the active one)."""
        now = self._clock()
        for node in [n for n, (_, at) in self._heard.items() if now - at > self._expiry]:
            del self._heard[node]
        return [
            ManagerView(node=notice.node, role="standby", epoch=notice.epoch, synced=notice.synced, seen_ago=now - at)
            for notice, at in self._heard.values()
            if notice.node != exclude
        ]
