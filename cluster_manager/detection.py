"""Fast, honest failure detection: the transport's departures and link changes turned into verdicts.

- A **departure** (the last server of a worker's own RPC service went away: on RabbitMQ its
  auto-delete queue was deleted because its connection closed, announced by the broker's event
  exchange within milliseconds) names the worker dead after ``settle`` seconds, unless in between
  the manager itself lost the broker (a broker shutting down closes every connection, the
  workers' before the manager's perhaps) or the worker joined again.
- A **link change** of the manager's own transport: while it has lost the broker the liveness
  sweeps count nothing, and once it is back every worker gets a grace period to report again
  (:meth:`~cluster_manager.liveness.LivenessTracker.hearing_again`).

The keepalive sweep stays the backstop for a hung worker (its connection stays open).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from background import Background

from .eventlog import events, log_event
from .liveness import LivenessTracker

__all__ = ["DeathWatch"]


class DeathWatch:
    """Decides when a departed worker is dead and when the sweeps may count.

    :param liveness: the manager's tracker (made deaf, then given a grace period, by link changes).
    :param member_of: the current registration of a worker id (any object, compared by identity;
        a new join makes a new one), or ``None`` for a name that is no worker.
    :param on_dead: removes a worker found dead (awaited in a task of this watch).
    :param settle: seconds between a departure and its verdict.
    :param grace: seconds of the grace period after the manager got the broker back.
    :param sleep: waits ``settle`` (tests pass a stepped sleep).
    """

    def __init__(
        self,
        liveness: LivenessTracker,
        *,
        member_of: Callable[[str], object | None],
        on_dead: Callable[[str], Awaitable[None]],
        settle: float,
        grace: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._liveness = liveness
        self._member_of = member_of
        self._on_dead = on_dead
        self.settle = settle
        self.grace = grace
        self._sleep = sleep
        #: How many times the manager lost the broker; a verdict needs it unchanged since the departure.
        self._losses = 0
        self._up = True
        self._verdicts = Background(events)
        self._closed = False

    def link_changed(self, up: bool) -> None:
        """The manager's transport lost (``False``) or regained (``True``) the broker."""
        if not up:
            self._losses += 1
            self._up = False
            self._liveness.deaf()
            log_event(logging.WARNING, "manager_cut_off", losses=self._losses)
            return
        self._up = True
        self._liveness.hearing_again(self.grace)
        log_event(logging.WARNING, "manager_reconnected", grace=self.grace)

    def departed(self, name: str) -> None:
        """The last server of ``name`` went away; a worker of that id is judged after ``settle``."""
        member = self._member_of(name)
        if member is None or self._closed:
            return
        log_event(logging.INFO, "worker_departed", worker_id=name)
        self._verdicts.spawn(self._judge(name, member, self._losses), f"departure:{name}")

    async def _judge(self, worker_id: str, member: object, losses: int) -> None:
        await self._sleep(self.settle)
        if losses != self._losses or not self._up:
            log_event(logging.INFO, "departure_ignored", worker_id=worker_id, reason="manager_cut_off")
            return
        now = self._member_of(worker_id)
        if now is not member:
            # Gone already (its quit came too, and worker_removed said so): nothing new to say.
            log_event(logging.INFO if now is not None else logging.DEBUG, "departure_ignored", worker_id=worker_id,
                      reason="rejoined_or_gone")
            return
        await self._on_dead(worker_id)

    async def close(self) -> None:
        """Drop every pending verdict."""
        self._closed = True
        await self._verdicts.stop()
