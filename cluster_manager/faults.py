"""The fault timeline of an active cluster manager: a bounded in-memory log of what went wrong
(and what an operator did), in the order the manager decided it.

The manager records where it decides: a worker lost (its keepalives stopped, or its connection
closed), a worker joined or rejoined, drained or undrained, this manager became active, a lost
worker's room handed over (or not).  Each fault gets the next sequence number; readers page through
the log with ``since`` (the ``next`` of their last read), never by time.  The wall-clock ``at`` is
for display only.  The log holds at most ``size`` faults; older ones are dropped first, and a
reader that fell behind learns it from ``next`` jumping past what it was given.

:meth:`FaultLog.subscribe` lets another part of the process hear every fault as it is recorded (an
alert sender); :meth:`FaultLog.record` lets it add its own (an alert that went out).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from contracts.admin import Fault, FaultPage, Severity

from .eventlog import log_exception

__all__ = ["FaultLog"]


class FaultLog:
    """At most ``size`` faults, numbered from 1.

    :param clock: wall-clock seconds for :attr:`Fault.at` (``time.time``).
    """

    def __init__(self, size: int, *, clock: Callable[[], float] = time.time) -> None:
        if size < 1:
            raise ValueError(f"a fault log holds at least one fault, got size {size}")
        self._faults: deque[Fault] = deque(maxlen=size)
        self._clock = clock
        self._seq = 0
        self._listeners: list[Callable[[Fault], None]] = []
        #: Names this log (see :class:`FaultPage`).
        self.id = uuid.uuid4().hex[:12]

    @property
    def last(self) -> int:
        """The sequence number of the last fault recorded (0: none yet)."""
        return self._seq

    def record(
        self,
        kind: str,
        *,
        severity: Severity = "warning",
        worker_id: str | None = None,
        purpose: str | None = None,
        **detail: Any,
    ) -> Fault:
        """Add a fault and tell every subscriber; returns it."""
        self._seq += 1
        fault = Fault(seq=self._seq, kind=kind, severity=severity, at=self._clock(), worker_id=worker_id,
                      purpose=purpose, detail=detail)
        self._faults.append(fault)
        for listener in list(self._listeners):
            try:
                listener(fault)
            except Exception:
                # A subscriber's failure is its own: the manager's decision was taken already.
                log_exception("fault_subscriber_failed", kind=kind)
        return fault

    def subscribe(self, callback: Callable[[Fault], None]) -> Callable[[], None]:
        """Call ``callback(fault)`` for every fault recorded from now on (synchronously: it must not
        block; schedule work of its own).  Returns the function that unsubscribes it."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def since(self, seq: int, limit: int | None = None) -> FaultPage:
        """The faults numbered after ``seq`` (at most ``limit``, the oldest first) and the ``next``
        ``since`` to ask with."""
        found = [fault for fault in self._faults if fault.seq > seq]
        if limit is not None:
            found = found[:limit]
        return FaultPage(faults=found, next=found[-1].seq if found else self._seq, log=self.id)

    def __len__(self) -> int:
        return len(self._faults)
