"""Participants held for a portal taken for gone are offered back to it (``reattach``).

A portal that nobody served for ``portal_unreachable_grace`` has its participants held
(:meth:`~conference_controller.controller.Controller._portal_lost`, ``reason="unreachable"``).  It may
have been alive all along (a broker connection slow to come back, a partition the cluster manager
did not see): its sockets are still open and its sessions still take this controller for theirs, and
nothing else would bring them back.  So the portal is asked, again and again, to re-attach them
(``reattach``: the portal makes a ``resume`` for each one it still has, and its client gets what it
missed).
The offer ends once the portal answered, once none of them is held here for it any more (each
resumed, through any portal, or left), or ``reconnection_timeout`` after the holds (every hold has
run out by then).  The attempts start ``delivery_retry_interval`` apart, each pause twice the last,
up to 8 times it, as the sender's own tries of an unreachable portal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Any

from contracts.portal import PortalClient
from rpc import RpcError, RpcRemoteError, Transport

from .delivery import unreachable_pause
from .ids import WorkerId
from .logs import EventLog
from .settings import ControllerSettings

__all__ = ["ReattachOffers"]


@dataclass(slots=True)
class _Offer:
    #: The participants held for the portal, to offer back (those resumed or gone since are dropped at each try).
    participants: set[str]
    #: Loop time after which the offer stops (every hold it is about has run out by then).
    until: float
    #: Loop time the offer started.
    since: float
    attempts: int = 0


class ReattachOffers:
    """At most one running offer per portal; participants held while one runs join it.

    :param held: those of the participants still held here for the portal (not resumed, not left).
    :param spawn: runs a coroutine in the controller's background (ended by its ``stop()``).
    """

    def __init__(self, transport: Transport, controller: WorkerId, settings: ControllerSettings, log: EventLog, *,
                 held: Callable[[WorkerId, Collection[str]], list[str]],
                 spawn: Callable[[Coroutine[Any, Any, Any], str], None]) -> None:
        self.transport = transport
        self.controller = controller
        self.settings = settings
        self.log = log
        self._held = held
        self._spawn = spawn
        self._offers: dict[WorkerId, _Offer] = {}

    @property
    def portals(self) -> list[WorkerId]:
        """The portals being offered their participants back now."""
        return sorted(self._offers)

    def offer(self, portal: WorkerId, participants: Collection[str]) -> None:
        """``participants`` were held for ``portal`` because nobody served it: offer them back to it."""
        if not participants:
            return
        now = asyncio.get_running_loop().time()
        until = now + self.settings.reconnection_timeout
        running = self._offers.get(portal)
        if running is not None:
            running.participants.update(participants)
            running.until = until
            return
        self._offers[portal] = _Offer(set(participants), until, now)
        self._spawn(self._run(portal), f"reattach-offer:{portal}")

    async def _run(self, portal: WorkerId) -> None:
        try:
            await self._offer_until_answered(portal)
        finally:
            self._offers.pop(portal, None)

    async def _offer_until_answered(self, portal: WorkerId) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        client = PortalClient(self.transport, portal)
        log = self.log.bind(portal=portal)
        offer = self._offers[portal]
        pause = settings.delivery_retry_interval
        error = ""
        while True:
            held = self._held(portal, offer.participants)
            offer.participants.intersection_update(held)
            if not held or loop.time() >= offer.until:
                log.info("reattach_offer_ended", reason="holds_ended" if not held else "timeout",
                         participants=len(held), attempts=offer.attempts, error=error)
                return
            offer.attempts += 1
            try:
                result = await client.reattach(controller=self.controller, participants=sorted(held),
                                               timeout=settings.portal_timeout)
            except RpcRemoteError as exc:  # it answered (a portal that does not know the call, bad arguments)
                log.warning("reattach_offer_refused", participants=len(held), attempts=offer.attempts,
                            error=exc.code, detail=exc.message)
                return
            except RpcError as exc:  # nobody serves it yet, or no answer in time: try again
                error = exc.code
            else:
                log.warning("reattach_offered", participants=len(held), reattaching=result.reattaching,
                            attempts=offer.attempts, after=round(loop.time() - offer.since, 3))
                return
            await asyncio.sleep(max(0.0, min(pause, offer.until - loop.time())))
            pause = unreachable_pause(pause, settings)
