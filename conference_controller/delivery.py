"""Delivery of notifications to portals: one sender (queue + task) per portal.

Every notification first gets its seq in the participant's outbox; it is then queued for the
participant's current portal, if the participant is connected.  A sender makes one RPC at a time
(``deliver``, with everything queued since the last one, up to ``delivery_batch``), in queue
order, so a participant's notifications reach its portal in seq order.  A call that
still fails after ``delivery_retries`` is given up: the message stays in the outbox and is
replayed by ``resume``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec

from rpc import RpcError, Transport

from .ids import ParticipantId, WorkerId
from .logs import EventLog
from .participant import Participant
from .settings import ControllerSettings

__all__ = ["Delivery"]


class _Item(msgspec.Struct, frozen=True):
    """One notification for one or more participants of one portal."""

    targets: list[tuple[ParticipantId, int]]
    event: str
    data: Any

    def wire(self) -> list[Any]:
        return [[[participant, seq] for participant, seq in self.targets], self.event, self.data]


class _PortalSender:
    def __init__(self, owner: Delivery, portal: WorkerId) -> None:
        self.owner = owner
        self.portal = portal
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.log = owner.log.bind(portal=portal)
        self.stopping = False
        self.task = asyncio.create_task(self._run(), name=f"deliver:{portal}")

    async def _run(self) -> None:
        settings = self.owner.settings
        # A cancellation that lands as a call completes can be swallowed on Python 3.11
        # (``wait_for``), so the loop also checks ``stopping``.
        while not self.stopping:
            if self.queue.empty():
                try:
                    async with asyncio.timeout(settings.sender_idle_timeout):
                        first = await self.queue.get()
                except TimeoutError:
                    if self.queue.empty():
                        self.owner._retire(self)
                        return
                    continue
            else:
                first = self.queue.get_nowait()
            # Everything queued meanwhile goes in the same call, still in order.
            batch = [first]
            while len(batch) < settings.delivery_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._send(batch)

    async def _send(self, batch: list[_Item]) -> None:
        settings = self.owner.settings
        args = {"controller": self.owner.controller, "items": [item.wire() for item in batch]}
        for attempt in range(settings.delivery_retries + 1):
            try:
                await self.owner.transport.call(self.portal, "deliver", args, timeout=settings.portal_timeout)
                return
            except RpcError as exc:
                if attempt == settings.delivery_retries:
                    self.log.warning("notifications_undelivered", count=len(batch), events=[i.event for i in batch],
                                     error=exc.code, detail=exc.message)
                    return
            await asyncio.sleep(settings.delivery_retry_interval)

    async def stop(self) -> None:
        self.stopping = True
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


class Delivery:
    """Seq-numbers notifications and hands them to per-portal senders."""

    def __init__(self, transport: Transport, controller: WorkerId, settings: ControllerSettings, log: EventLog) -> None:
        self.transport = transport
        self.controller = controller
        self.settings = settings
        self.log = log
        self._senders: dict[WorkerId, _PortalSender] = {}
        self._closed = False

    def send(self, participant: Participant, event: str, data: Any) -> int:
        """Give ``participant`` a notification; returns its seq."""
        seq = participant.outbox.append(event, data)
        if participant.connected and not self._closed:
            self._sender(participant.portal).queue.put_nowait(_Item([(participant.id, seq)], event, data))
        return seq

    def fan_out(self, participants: Iterable[Participant], event: str, data: Any) -> None:
        """The same notification to many: one item per portal."""
        by_portal: dict[WorkerId, list[tuple[ParticipantId, int]]] = defaultdict(list)
        for participant in participants:
            seq = participant.outbox.append(event, data)
            if participant.connected:
                by_portal[participant.portal].append((participant.id, seq))
        if self._closed:
            return
        for portal, targets in by_portal.items():
            self._sender(portal).queue.put_nowait(_Item(targets, event, data))

    def _sender(self, portal: WorkerId) -> _PortalSender:
        sender = self._senders.get(portal)
        if sender is None:
            sender = self._senders[portal] = _PortalSender(self, portal)
        return sender

    def _retire(self, sender: _PortalSender) -> None:
        if self._senders.get(sender.portal) is sender:
            del self._senders[sender.portal]

    async def forget_portal(self, portal: WorkerId) -> None:
        """The portal is gone: stop its sender; what it held stays in the outboxes."""
        sender = self._senders.pop(portal, None)
        if sender is not None:
            await sender.stop()

    async def close(self) -> None:
        self._closed = True
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            await sender.stop()

    @property
    def portals(self) -> list[WorkerId]:
        return sorted(self._senders)
