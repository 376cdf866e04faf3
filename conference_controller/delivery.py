"""Delivery of notifications to portals: one sender (queue + task) per portal.

Every notification has its seq in the participant's outbox already (the room core gave it); it is
queued for the participant's current portal, if the participant is connected.  A sender makes one RPC at a time
(``deliver``, with everything queued since the last one, up to ``delivery_batch``), in queue
order, so a participant's notifications reach its portal in seq order.  A call that
still fails after ``delivery_retries`` is given up: the message stays in the outbox and is
replayed by ``resume``, and the call goes to the dead letters (``switchboard admin dead-letters``).
A portal that nobody serves at the broker is tried for ``portal_unreachable_grace`` first: its
participants are held (as on its ``exit.quit``) only if it stays so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import Callable

import msgspec

from alerts import DeadLetter, FaultReporter
from contracts.portal import DeliverItem, DeliverTarget, PortalClient
from rpc import RpcError, RpcNoService, Transport

from .ids import WorkerId
from .logs import EventLog
from .events import Notified
from .settings import ControllerSettings
from .state import RoomState

__all__ = ["PortalDelivery", "unreachable_pause"]


def unreachable_pause(pause: float, settings: ControllerSettings) -> float:
    """The pause after ``pause`` between two tries of a portal nobody serves (a portal moving between
    broker nodes: seconds, not tenths): twice as long, up to 8 times ``delivery_retry_interval``."""
    return min(pause * 2, settings.delivery_retry_interval * 8)


class _PortalSender:
    """The queue of one portal and the task that empties it, one ``deliver`` call at a time."""

    def __init__(self, owner: PortalDelivery, portal: WorkerId) -> None:
        self.owner = owner
        self.portal = portal
        self.client = PortalClient(owner.transport, portal)
        self.items: deque[DeliverItem] = deque()
        self.log = owner.log.bind(portal=portal)
        self.stopping = False
        self._loop = asyncio.get_running_loop()
        self._wakeup: asyncio.Future[None] | None = None
        self.active_at = self._loop.time()
        #: Since when (loop time) nobody serves the portal, while its deliveries are still tried.
        self.unreachable_since: float | None = None
        self.task = asyncio.create_task(self._run(), name=f"deliver:{portal}")

    def put(self, item: DeliverItem) -> None:
        self.items.append(item)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def idle_since(self) -> float | None:
        """When the sender last finished a call, if it is waiting with nothing queued; else ``None``."""
        return self.active_at if not self.items and self._wakeup is not None else None

    def unreachable_for(self) -> float:
        """Seconds nobody has served the portal while deliveries to it are still tried (else 0)."""
        since = self.unreachable_since
        return 0.0 if since is None else self._loop.time() - since

    async def _run(self) -> None:
        limit = self.owner.settings.delivery_batch
        items = self.items
        # A cancellation that lands as a call completes can be swallowed on Python 3.11
        # (``wait_for``), so the loop also checks ``stopping``.
        while not self.stopping:
            if not items:
                self._wakeup = self._loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
                continue
            # Everything queued meanwhile goes in the same call, still in order.
            batch = [items.popleft() for _ in range(min(limit, len(items)))]
            await self._send(batch)
            self.active_at = self._loop.time()

    async def _send(self, batch: list[DeliverItem]) -> None:
        """One ``deliver`` call of ``batch``, tried again ``delivery_retries`` times; while nobody serves
        the portal (``RpcNoService``: its queue is gone, as while it moves to another broker node), for
        ``portal_unreachable_grace`` seconds too, the batch and what queues behind it kept in order."""
        # A plain loop, not a retry library: this runs for every relayed message, and building a
        # retrying object per call cost more than the in-process call itself.
        settings = self.owner.settings
        attempts = max(1, settings.delivery_retries + 1)
        deliver = self.client.deliver
        attempt = 0
        pause = settings.delivery_retry_interval
        while not self.stopping:
            attempt += 1
            try:
                await deliver(controller=self.owner.controller, items=batch, timeout=settings.portal_timeout)
            except RpcError as exc:
                if isinstance(exc, RpcNoService) and self.unreachable_since is None:
                    self.unreachable_since = self._loop.time()
                    self.log.warning("portal_unreachable", grace=settings.portal_unreachable_grace)
                within_grace = (self.unreachable_since is not None
                                and self.unreachable_for() < settings.portal_unreachable_grace)
                if attempt >= attempts and not within_grace:
                    self._give_up(batch, attempt, exc)
                    if isinstance(exc, RpcNoService) and self.owner.on_portal_gone is not None:
                        self.owner.on_portal_gone(self.portal)
                    return
            else:
                if self.unreachable_since is not None:
                    self.log.info("portal_reachable", after=round(self.unreachable_for(), 3), attempts=attempt)
                    self.unreachable_since = None
                return
            await asyncio.sleep(pause)
            if self.unreachable_since is not None:
                pause = unreachable_pause(pause, settings)

    def _give_up(self, batch: list[DeliverItem], attempts: int, error: RpcError) -> None:
        """Every attempt failed: the notifications stay in the outboxes (replayed by ``resume``) and
        the call goes to the dead letters."""
        self.log.warning("notifications_undelivered", count=len(batch), events=[i.event for i in batch],
                         error=error.code, detail=error.message)
        if self.owner.faults is not None:
            method, args = PortalClient.deliver_request(controller=self.owner.controller, items=batch)
            self.owner.faults.dead_letter(DeadLetter(
                origin="message", description=f"{len(batch)} notification(s) to portal {self.portal}",
                reason=error.code, attempts=attempts, target=self.portal, method=method,
                args=msgspec.to_builtins(args), group=self.portal))

    async def stop(self) -> None:
        self.stopping = True
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


class PortalDelivery:
    """Seq-numbers notifications and hands them to per-portal senders."""

    def __init__(self, transport: Transport, controller: WorkerId, settings: ControllerSettings, log: EventLog,
                 *, faults: FaultReporter | None = None) -> None:
        self.transport = transport
        #: Gets what is still undelivered after the retries, as a dead letter.
        self.faults = faults
        self.controller = controller
        self.settings = settings
        self.log = log
        self._senders: dict[WorkerId, _PortalSender] = {}
        #: Told of a portal that nobody serves any more (its queue is gone: the process died or lost
        #: the broker) once a delivery to it ran out of attempts: a second path to what the portal's
        #: ``exit.quit`` event says, for when that event was missed (events are at most once).
        self.on_portal_gone: Callable[[WorkerId], None] | None = None
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None

    def deliver(self, room: RoomState, notified: Notified) -> None:
        """Hand a notification (seqs given) to the portals of its connected targets: one item per portal."""
        if self._closed:
            return
        participants = room.participants
        by_portal: dict[str, list[DeliverTarget]] = defaultdict(list)
        for participant_id, seq in notified.targets:
            participant = participants.get(participant_id)
            if participant is not None and participant.connected:
                by_portal[participant.portal].append(DeliverTarget(participant_id, seq))
        for portal, targets in by_portal.items():
            self._sender(WorkerId(portal)).put(DeliverItem(targets, notified.event, notified.data))

    def _sender(self, portal: WorkerId) -> _PortalSender:
        sender = self._senders.get(portal)
        if sender is None:
            sender = self._senders[portal] = _PortalSender(self, portal)
            if self._sweeper is None or self._sweeper.done():
                self._sweeper = asyncio.create_task(self._sweep(), name="deliver:sweep")
        return sender

    async def _sweep(self) -> None:
        """Stop the senders idle for ``sender_idle_timeout`` (a portal with nobody here any more);
        one timer for all of them instead of one per queued notification."""
        idle_timeout = self.settings.sender_idle_timeout
        loop = asyncio.get_running_loop()
        while self._senders:
            await asyncio.sleep(idle_timeout / 2)
            now = loop.time()
            for portal, sender in list(self._senders.items()):
                since = sender.idle_since()
                if since is not None and now - since >= idle_timeout:
                    del self._senders[portal]
                    await sender.stop()

    async def forget_portal(self, portal: WorkerId) -> None:
        """The portal is gone: stop its sender; what it held stays in the outboxes."""
        sender = self._senders.pop(portal, None)
        if sender is not None:
            await sender.stop()

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            await sender.stop()

    @property
    def portals(self) -> list[WorkerId]:
        return sorted(self._senders)
