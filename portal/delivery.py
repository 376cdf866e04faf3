"""Notifications to clients: emit on a live socket, buffer while a login or relogin is in flight,
never twice, and tell the controllers what was delivered (``ack`` casts, batched).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import socketio

from contracts.controller import ControllerClient
from rpc import RpcError, Transport

from .logs import EventLog
from .metrics import PortalMetrics
from .session import Notification, Phase, Session

__all__ = ["Delivery", "AckBatcher", "with_seq"]


def with_seq(data: Any, seq: int | None) -> Any:
    """The extension's payload: ``seq`` added to the event's object."""
    if seq is None:
        return data
    if isinstance(data, dict):
        return {**data, "seq": seq}
    return {"data": data, "seq": seq}


class AckBatcher:
    """Collects the highest delivered seq per participant; every ``interval`` one ``ack_many`` cast
    per controller carries them all.

    An ack the client sent itself (extension sessions) shows the client has its session, hence its
    new ticket; an ack the portal makes for a plain client on emitting shows nothing of the kind (the
    client may never have read it). Such participants are listed in ``unconfirmed``, so the
    controller trims their outbox without ending the retry window of the ticket they used.

    The wait between batches goes through ``sleep`` (default :func:`asyncio.sleep`); tests pass one
    that lets each turn of the loop through by hand."""

    def __init__(
        self,
        transport: Transport,
        interval: float,
        log: EventLog,
        portal: str,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.transport = transport
        self.interval = interval
        #: This portal's worker id: the controller takes acks only from a participant's current portal.
        self.portal = portal
        self.log = log
        #: participant → (controller, highest seq, whether the client itself acknowledged it)
        self._highest: dict[str, tuple[str, int, bool]] = {}
        self._task: asyncio.Task[None] | None = None
        self._sleep = sleep

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"portal-acks:{self.portal}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()

    def note(self, session: Session, seq: int) -> None:
        current = self._highest.get(session.id)
        if current is None or current[1] < seq or current[0] != session.controller:
            self._highest[session.id] = (session.controller, seq, session.extension)

    def discard(self, participant: str) -> None:
        """Forget what is pending for ``participant`` (its socket here was displaced)."""
        self._highest.pop(participant, None)

    async def flush(self, participant: str | None = None) -> None:
        """Send pending acks now (of one participant, or all)."""
        if participant is None:
            batch, self._highest = self._highest, {}
        else:
            entry = self._highest.pop(participant, None)
            batch = {participant: entry} if entry is not None else {}
        by_controller: dict[str, tuple[dict[str, int], list[str]]] = {}
        for pid, (controller, seq, by_client) in batch.items():
            acks, unconfirmed = by_controller.setdefault(controller, ({}, []))
            acks[pid] = seq
            if not by_client:
                unconfirmed.append(pid)
        for controller, (acks, unconfirmed) in by_controller.items():
            try:
                await ControllerClient(self.transport, controller).ack_many(acks=acks, portal=self.portal,
                                                                            unconfirmed=unconfirmed or None)
            except RpcError as exc:
                self.log.debug("acks_not_sent", count=len(acks), controller=controller, error=exc.code)

    async def _loop(self) -> None:
        while True:
            await self._sleep(self.interval)
            await self.flush()


class Delivery:
    """Emits notifications to the sockets of this portal's sessions."""

    def __init__(self, sio: socketio.AsyncServer, acks: AckBatcher, metrics: PortalMetrics) -> None:
        self.sio = sio
        self.acks = acks
        self.metrics = metrics

    async def deliver(self, session: Session, note: Notification) -> bool:
        """Emit (or buffer) ``note``; ``False`` when the participant has no socket here any more."""
        if note.seq is not None and note.seq <= session.last_seq:
            return True  # already emitted (a replay overlapping with live delivery)
        if session.phase is Phase.PENDING:
            session.hold_back(note)
            return True
        if not session.live:
            return False
        await self._emit(session, note)
        return True

    async def deliver_many(self, targets: Iterable[tuple[Session, int | None]], event: str, data: Any) -> list[str]:
        """One room-wide event to several sessions; the payload is encoded once for plain clients."""
        undelivered: list[str] = []
        plain: list[tuple[Session, int | None]] = []
        for session, seq in targets:
            if seq is not None and seq <= session.last_seq:
                continue
            if session.live and not session.extension:
                plain.append((session, seq))
            elif not await self.deliver(session, Notification(event, data, seq)):
                undelivered.append(session.id)
        if plain:
            await self.sio.emit(event, data, to=[s.sid for s, _ in plain if s.sid is not None])
            for session, seq in plain:
                self._emitted(session, event, seq)
        return undelivered

    async def flush(self, session: Session, replay: Iterable[Notification] = ()) -> None:
        """After the login/relogin ack: emit ``replay`` then the buffer, in seq order, and go live.

        Nothing awaits between taking the buffer and going live except the emits themselves, and a
        notification arriving meanwhile is appended to the same buffer, so order is kept.
        """
        for note in replay:
            if note.seq is None or note.seq > session.last_seq:
                await self._emit(session, note)
        while session.buffer and session.phase is Phase.PENDING:
            note = session.buffer.pop(0)
            if note.seq is None or note.seq > session.last_seq:
                await self._emit(session, note)
        if session.phase is Phase.PENDING:
            session.phase = Phase.LIVE
            session.buffer = None  # only a pending session buffers

    async def _emit(self, session: Session, note: Notification) -> None:
        if session.sid is None:
            return
        payload = with_seq(note.data, note.seq) if session.extension else note.data
        await self.sio.emit(note.event, payload, to=session.sid)
        self._emitted(session, note.event, note.seq)

    def _emitted(self, session: Session, event: str, seq: int | None) -> None:
        self.metrics.events.inc(event)
        if seq is None:
            return
        session.last_seq = max(session.last_seq, seq)
        if not session.extension:
            self.acks.note(session, seq)
