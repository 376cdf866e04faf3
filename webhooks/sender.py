"""Delivery of webhook events: one queue and one task per room, so that a room's events go out one
after the other in seq order (each to every endpoint that wants it, with the bounded retries of
:func:`alerts.retry.retry_send`); an event no attempt delivered to an endpoint is handed to the alert
service as a dead letter and the room's next event follows.  Once an event is done (delivered or
given up everywhere) ``on_done`` is told, and the controller drops it from the room's outbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import msgspec

from alerts import DeadLetter, FaultReporter
from alerts.retry import Sleep, retry_send
from alerts.sinks import DeliveryFailed, redact_url

from .logs import WebhookLog
from .events import HookEvent
from .post import post_event
from .service import webhooks_service_name
from .settings import EndpointSettings, WebhookSettings

__all__ = ["WebhookSender", "WebhookTallies"]

log = WebhookLog()

#: ``on_done(room, instance, seq)``: the room's events up to ``seq`` are done.
OnDone = Callable[[str, str, int], None]


@dataclass
class WebhookTallies:
    #: Deliveries an endpoint took, failed attempts, and deliveries given up (dead letters).
    sent: int = 0
    failed: int = 0
    dead_lettered: int = 0


@dataclass(eq=False)
class _RoomQueue:
    room: str
    instance: str
    events: deque[HookEvent] = field(default_factory=deque)
    #: The highest seq ever queued here: a room rebuilt in this process queues only what is new.
    last_seq: int = 0
    task: asyncio.Task[None] | None = None


class WebhookSender:
    """:param faults: where dead letters go (``None``: logged only).
    :param sleep: the backoff's sleep (tests pass a fake one)."""

    def __init__(self, settings: WebhookSettings, *, cluster: str, faults: FaultReporter | None,
                 on_done: OnDone, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.service = webhooks_service_name(cluster)
        self.tallies = WebhookTallies()
        self._faults = faults
        self._on_done = on_done
        self._sleep = sleep
        self._queues: dict[tuple[str, str], _RoomQueue] = {}
        self._slots = asyncio.Semaphore(settings.max_rooms_in_flight)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return bool(self.settings.endpoints)

    def put(self, room: str, instance: str, events: list[HookEvent]) -> None:
        """Queue the room's ``events`` (in seq order); those queued here before are skipped."""
        if self._closed or not events or not self.enabled:
            return
        queue = self._queues.get((room, instance))
        if queue is None:
            queue = self._queues[(room, instance)] = _RoomQueue(room, instance)
        fresh = [event for event in events if event.seq > queue.last_seq]
        if not fresh:
            return
        queue.events.extend(fresh)
        queue.last_seq = fresh[-1].seq
        if len(queue.events) > self.settings.max_pending_per_room:
            drop = len(queue.events) - self.settings.max_pending_per_room
            for _ in range(drop):
                lost = queue.events.popleft()
                log.warning("webhook_dropped", type=lost.type, room=room, seq=lost.seq,
                            pending_limit=self.settings.max_pending_per_room)
        if queue.task is None or queue.task.done():
            queue.task = asyncio.get_running_loop().create_task(self._run(queue), name=f"webhooks:{room}")

    def forget(self, room: str) -> None:
        """The room is no longer held here (it moved, or its journal write was lost): stop sending
        its events (an attempt in flight is cancelled); whoever holds it next sends what is still
        pending in its state."""
        for key in [key for key in self._queues if key[0] == room]:
            queue = self._queues.pop(key)
            queue.events.clear()
            if queue.task is not None:
                queue.task.cancel()

    async def close(self) -> None:
        self._closed = True
        queues, self._queues = list(self._queues.values()), {}
        for queue in queues:
            await self._stop(queue)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _stop(self, queue: _RoomQueue) -> None:
        queue.events.clear()
        if queue.task is not None and not queue.task.done():
            queue.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await queue.task

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _run(self, queue: _RoomQueue) -> None:
        while queue.events:
            event = queue.events[0]
            async with self._slots:
                await asyncio.gather(*(self._deliver(endpoint, queue, event)
                                       for endpoint in self.settings.endpoints if endpoint.wants(event.type)))
            if queue.events and queue.events[0] is event:
                queue.events.popleft()
            try:
                self._on_done(queue.room, queue.instance, event.seq)
            except Exception:  # the room failed meanwhile: its next holder sends the event again
                log.exception("webhook_sent_not_recorded", type=event.type, room=queue.room, seq=event.seq)
        # Nothing left: the queue goes (a later put makes a new one).
        if self._queues.get((queue.room, queue.instance)) is queue:
            del self._queues[(queue.room, queue.instance)]

    async def _deliver(self, endpoint: EndpointSettings, queue: _RoomQueue, event: HookEvent) -> None:
        def failed(_error: str) -> None:
            self.tallies.failed += 1

        try:
            await retry_send(lambda: post_event(self.session(), endpoint, queue.room, queue.instance, event),
                             self.settings, what=f"webhook {event.type} of room {queue.room} (seq {event.seq})",
                             where=f"{endpoint.name} {redact_url(endpoint.url)}", sleep=self._sleep,
                             on_failed_attempt=failed)
        except DeliveryFailed as exc:
            self.tallies.dead_lettered += 1
            log.error("webhook_given_up", type=event.type, room=queue.room, seq=event.seq, endpoint=endpoint.name,
                      attempts=self.settings.attempts, error=str(exc))
            if self._faults is not None:
                self._faults.dead_letter(DeadLetter(
                    origin="message", reason=str(exc), attempts=self.settings.attempts,
                    description=f"webhook {event.type} of room {queue.room} (seq {event.seq}) to {endpoint.name}",
                    target=self.service, method="redeliver", group=f"webhook:{endpoint.name}",
                    args={"endpoint": endpoint.name, "room": queue.room, "instance": queue.instance,
                          "event": msgspec.to_builtins(event)}))
            return
        self.tallies.sent += 1
