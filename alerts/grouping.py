"""Grouping: faults of one group within a window go out as one :class:`Alert` with a count.

Pure (no I/O, clock injected): :meth:`Grouper.add` opens or joins a group, :meth:`Grouper.due`
closes the groups whose window has run out; the alert service asks it when to look again
(:meth:`Grouper.next_deadline`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from .faults import Fault, Severity

__all__ = ["Alert", "Grouper"]

_RANK: dict[Severity, int] = {"info": 0, "warning": 1, "error": 2}


class Alert(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What a sink is given: the faults of one group (the first ``max_faults_listed``) and how many."""

    id: str
    group: str
    count: int
    severity: Severity
    first_at: float
    last_at: float
    faults: list[Fault]

    @property
    def title(self) -> str:
        head = self.faults[0].summary if self.faults else self.group
        return head if self.count == 1 else f"{head} (+{self.count - 1} related)"


@dataclass
class _Group:
    key: str
    opened: float
    faults: list[Fault] = field(default_factory=list)
    count: int = 0


class Grouper:
    """Groups faults by :attr:`Fault.group_key` for ``window`` seconds of ``clock`` from each group's
    first fault; at most ``max_groups`` open groups and ``max_listed`` faults listed per alert."""

    def __init__(self, window: float, *, max_groups: int, max_listed: int, clock: Callable[[], float]) -> None:
        self.window = window
        self.max_groups = max_groups
        self.max_listed = max_listed
        self._clock = clock
        self._groups: dict[str, _Group] = {}

    def add(self, fault: Fault) -> list[Alert]:
        """Put ``fault`` in its group; returns the alerts of groups closed early to make room."""
        key = fault.group_key
        group = self._groups.get(key)
        early: list[Alert] = []
        if group is None:
            while len(self._groups) >= self.max_groups:
                oldest = next(iter(self._groups))
                early.append(self._close(oldest))
            group = self._groups[key] = _Group(key, self._clock())
        group.count += 1
        if len(group.faults) < self.max_listed:
            group.faults.append(fault)
        return early

    def due(self) -> list[Alert]:
        """Close and return the groups whose window has run out."""
        now = self._clock()
        return [self._close(key) for key, group in list(self._groups.items()) if now >= group.opened + self.window]

    def drain(self) -> list[Alert]:
        """Close every group (on shutdown)."""
        return [self._close(key) for key in list(self._groups)]

    def next_deadline(self) -> float | None:
        """When the oldest open group's window runs out (clock seconds), or ``None``."""
        return min((g.opened + self.window for g in self._groups.values()), default=None)

    def __len__(self) -> int:
        return len(self._groups)

    def _close(self, key: str) -> Alert:
        group = self._groups.pop(key)
        faults = group.faults
        return Alert(
            id=uuid.uuid4().hex[:16],
            group=key,
            count=group.count,
            severity=max((f.severity for f in faults), key=_RANK.__getitem__),
            first_at=min(f.at for f in faults),
            last_at=max(f.at for f in faults),
            faults=list(faults),
        )
