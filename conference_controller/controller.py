"""The conference controller: a cluster worker of purpose ``conference`` hosting many rooms.

It is the shell around the room core (:mod:`~conference_controller.machine`): for every command it
asks the core for the events (``decide_*``), appends them to the journal, applies them to the room's
state, and acts on them once they are durable — delivers notifications, arms hold timers from the
deadlines the events carry, tells media agents.  It also owns the room registry and the participant
→ room index, fault handling (``exit.#``) and its place in the cluster.  The RPC surface is
:class:`~conference_controller.service.ControllerService`; media sessions are
:class:`~conference_controller.sessions.MediaSessions`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from alerts import FaultReporter
from background import Background
from contracts.cluster import ClusterClient, WorkerExit, new_worker_id
from contracts.rooms import UNKNOWN_ROOM, RoomConfig, RoomsClient
from contracts.controller import ControllerClient, ParticipantInit
from contracts.portal import PortalClient
from credentials import AdminKeys
from journal import Fenced, Journal, Snapshot
from rpc import Later, RpcError, RpcRemoteError, ServiceError, ServiceHandle, Subscription, Transport
from rpc.settings import WorkerSettings
from rpc.version import software_version
from rpc.worker import ClusterWorker
from webhooks import HookEvent, WebhookSender, WebhookService, WebhookSettings, webhooks_service_name

from . import machine
from .delivery import PortalDelivery
from .errors import (
    AlreadyJoined,
    ControllerError,
    Draining,
    NotCurrentPortal,
    RoomConfigUnavailable,
    RoomReloading,
    UnknownParticipant,
    UnknownRoom,
)
from .events import (
    Event,
    Held,
    HooksSent,
    Joined,
    Left,
    Notified,
    Resumed,
    StreamRemoved,
    SubscriptionRemoved,
    decode_events,
    encode_events,
)
from .ids import ParticipantId, RoomId, WorkerId
from .logs import EventLog
from .media import MEDIA_PURPOSE, MediaGateway
from .observe import Tallies
from .reattach import ReattachOffers
from .room import Landed, Room
from .service import ControllerService
from .sessions import MediaSessions
from .settings import ControllerSettings
from .state import Limits, ParticipantState, RoomState

__all__ = ["Controller", "PURPOSE"]

PURPOSE = "conference"
_PORTAL_PURPOSE = "portal"
#: A drain's placements of one room: each refused by a controller draining too is placed again.
_PLACEMENTS = 3
#: The scheduler's codes for "no controller takes rooms now": a drain waits on them.
_NO_CONTROLLER = frozenset({"no_worker_available", "no_matching_worker"})
#: Claims of a room's next epoch before giving up (each one goes past the epoch that refused it).
_CLAIM_ATTEMPTS = 5
_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(RoomState)


def _ms(seconds: float) -> float:
    """A duration for the logs, in milliseconds."""
    return round(seconds * 1000, 1)


class Controller:
    """Rooms of one controller process.

    ``start()`` serves the RPC service named ``worker_id``, subscribes to fault events and joins
    the cluster as a ``conference`` worker; ``stop()`` (idempotent) ends every loop and timer it
    started and quits the cluster.  With a ``journal`` (opened and closed by the controller with
    ``own_journal``, else by whoever made it: several controllers may share one), every change is durable before anyone outside
    hears of it, and a room this controller opens continues the history the journal has.
    """

    def __init__(
        self,
        transport: Transport,
        settings: ControllerSettings,
        worker_settings: WorkerSettings,
        *,
        worker_id: str | None = None,
        rooms_service: str = "cluster.rooms",
        admin_keys: AdminKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
        journal: Journal | None = None,
        own_journal: bool = False,
        adopt_rooms: bool = False,
        alerts: FaultReporter | None = None,
        webhooks: WebhookSettings | None = None,
    ) -> None:
        self.transport = transport
        #: ``start()`` opens the journal and ``stop()`` closes it (else whoever made it does).
        self._own_journal = own_journal
        #: ``start()`` rebuilds every room the journal has (the only controller of a single-process
        #: server, back after a restart: rooms nobody relogs into still end their holds and close).
        self._adopt_rooms = adopt_rooms
        #: Seconds, monotonic: hold deadlines, the ticket retry window and the outbox age (timers
        #: still run on the event loop).  Tests pass a clock they move by hand.
        self.clock = clock
        #: The keys the admin calls of :class:`ControllerService` must carry; none = all refused.
        self.admin_keys = admin_keys or AdminKeys([])
        self.settings = settings
        self.limits = Limits(
            outbox_max_messages=max(1, settings.outbox_max_messages), outbox_max_age=settings.outbox_max_age,
            dedupe_window=max(1, settings.dedupe_window), reconnection_timeout=settings.reconnection_timeout,
            ticket_retry_window=settings.ticket_retry_window,
            hook_outbox_max=webhooks.max_pending_per_room if webhooks is not None and webhooks.endpoints else 0,
        )
        self.worker_settings = worker_settings
        self.worker_id = WorkerId(worker_id or new_worker_id(PURPOSE))
        self.rooms_service = rooms_service
        self.journal = journal
        self.log = EventLog(worker=self.worker_id)
        self.delivery = PortalDelivery(transport, self.worker_id, settings, self.log,
                                       faults=alerts or FaultReporter(transport, worker_settings.cluster_name))
        self.delivery.on_portal_gone = self._portal_unreachable
        #: Sends the rooms' webhook events (docs/webhooks.md); the dead letters go where the delivery's go.
        self.webhooks = WebhookSender(webhooks or WebhookSettings(), cluster=worker_settings.cluster_name,
                                      faults=self.delivery.faults, on_done=self._hooks_done)
        self._webhook_service: ServiceHandle | None = None
        self.media = MediaGateway(transport, cluster=worker_settings.cluster_name, controller=self.worker_id,
                                  settings=settings, log=self.log)
        self.sessions = MediaSessions(self)
        self.rooms: dict[RoomId, Room] = {}
        #: participant → its room (one room per participant per controller).
        self.participants: dict[ParticipantId, Room] = {}
        self._loading: dict[RoomId, asyncio.Task[Room]] = {}
        #: Participants of rooms unloaded after a lost journal write, until their room is rebuilt here.
        self._orphans: dict[ParticipantId, RoomId] = {}
        #: Each such room's epoch here when it was unloaded, and the round of rebuilds running.
        self._lost_epochs: dict[RoomId, int] = {}
        self._reloads: dict[RoomId, asyncio.Task[None]] = {}
        self._background = Background(self.log)
        #: Participants held for a portal taken for gone, offered back to it (it may be alive).
        self.reattach_offers = ReattachOffers(transport, self.worker_id, settings, self.log, held=self._held_for,
                                              spawn=self.spawn)
        self.worker = ClusterWorker(
            transport, purpose=PURPOSE, worker_id=self.worker_id,
            info={"max_load": settings.max_load, "hostname": socket.gethostname(), "pid": os.getpid(),
                  "version": software_version()},
            settings=worker_settings, load=self._load, on_loss=self._on_loss,
        )
        self._service: ServiceHandle | None = None
        self._events: Subscription | None = None
        #: Set once a drain has moved every room away: the process may exit.
        self.finished = asyncio.Event()
        self._migration: asyncio.Task[None] | None = None
        #: Drained (``migrate`` was called): a room handed here is refused (:class:`Draining`).
        self._draining = False
        self._started = False
        self._stopped = False
        #: Start completed (RPC service up, joined) and not stopped since: see :attr:`serving`.
        self._serving = False
        self.tallies = Tallies()
        #: Stops the journal's calls of :meth:`_snapshot_asked` (a journal with ``watch_snapshots``).
        self._unwatch: Callable[[], None] | None = None
        #: Rooms whose snapshot the journal asked for, being saved.
        self._asked: set[RoomId] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open its own journal, serve, subscribe to ``exit.#``, join the cluster, adopt the
        journal's rooms (``adopt_rooms``); returns when schedulable.  Idempotent.

        A step that fails undoes the ones before it, in reverse, and its error is raised; a
        controller that failed to start or was stopped cannot be started again."""
        if self._stopped:
            raise RuntimeError("this Controller was stopped; make a new one")
        if self._started:
            return
        self._started = True
        try:
            async with AsyncExitStack() as undo:
                if self.journal is not None and self._own_journal:
                    await self.journal.open()
                    undo.push_async_callback(self.journal.close)
                watch = getattr(self.journal, "watch_snapshots", None)
                if watch is not None:  # a journal that says when a room's replay would read far
                    self._unwatch = watch(self._snapshot_asked)
                    undo.callback(self._stop_watching)
                self._service = await self.transport.serve(self.worker_id, ControllerService(self))
                undo.push_async_callback(self._service.stop)
                if self.webhooks.enabled:
                    self._webhook_service = await self.transport.serve(
                        webhooks_service_name(self.worker_settings.cluster_name), WebhookService(self.webhooks))
                    undo.push_async_callback(self._webhook_service.stop)
                self._events = await self.transport.subscribe_events("exit.#", self._on_fault)
                undo.push_async_callback(self._events.cancel)
                await self.worker.start()
                undo.push_async_callback(self._quit_cluster)
                if self.journal is not None and self._adopt_rooms:
                    undo.push_async_callback(self._end_rooms)
                    await self._adopt_journal_rooms()
                undo.pop_all()
        except BaseException:
            self._stopped = True
            raise
        self._serving = True
        self.log.info("controller_started")

    async def _adopt_journal_rooms(self) -> None:
        assert self.journal is not None
        for room_id in await self.journal.rooms():
            try:
                await self.take_over(RoomId(room_id))
            except ServiceError as exc:
                self.log.warning("room_not_adopted", room=room_id, error=exc.code)

    async def stop(self) -> None:
        """Stop serving, end timers, senders and background calls, quit the cluster.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._serving = False
        if self._events is not None:
            await self._events.cancel()
        if self._service is not None:
            await self._service.stop()
        if self._webhook_service is not None:
            await self._webhook_service.stop()
        self._stop_watching()
        await self._end_rooms()
        if self._started:
            await self._quit_cluster()
        if self.journal is not None and self._own_journal:
            await self.journal.close()
        self.log.info("controller_stopped", rooms=len(self.rooms), participants=len(self.participants))

    async def _end_rooms(self) -> None:
        """End every room's loading, timers, senders and background calls."""
        for task in list(self._loading.values()):
            task.cancel()
        # Acks whose records wait are written first (bounded by the journal's own deadlines): a
        # restart then redelivers nothing that was acknowledged.
        waiting = [room for room in self.rooms.values() if room.deferred and room.failed is None]
        await asyncio.gather(*(self._durable(room) for room in waiting), return_exceptions=True)
        for room in self.rooms.values():
            room.cancel_timers()
        await self.delivery.close()
        await self.webhooks.close()
        await self._background.stop()
        await asyncio.gather(*self._loading.values(), return_exceptions=True)

    async def _quit_cluster(self) -> None:
        # Bounded: on Python 3.11 a cancelled RPC call can swallow the cancellation, and then a
        # worker loop would never end; a stop must not hang on it.
        bound = 4 * (self.worker_settings.keepalive_timeout + self.worker_settings.keepalive_interval)
        try:
            async with asyncio.timeout(bound):
                await self.worker.stop(quit=True)
        except TimeoutError:
            self.log.warning("cluster_quit_timeout", seconds=bound)

    @property
    def serving(self) -> bool:
        """Started (its RPC service up, joined to the cluster once) and not stopped."""
        return self._serving

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run a best-effort call in the background (ended by ``stop()``)."""
        if self._stopped:
            coro.close()
            return
        self._background.spawn(coro, name)

    def _load(self) -> float:
        return min(1.0, len(self.participants) / max(1, self.settings.capacity))

    # -- lookups ---------------------------------------------------------------------------------

    def participant(self, participant_id: str) -> ParticipantState:
        return self.participant_room(participant_id)[1]

    def participant_room(self, participant_id: str) -> tuple[Room, ParticipantState]:
        room = self.participants.get(ParticipantId(participant_id))
        found = None if room is None else room.state.participants.get(participant_id)
        if room is None or found is None:
            orphaned = self._orphans.get(ParticipantId(participant_id))
            if orphaned is not None:
                self._reload(orphaned)
                raise RoomReloading(f"room {orphaned} lost a journal write and is being rebuilt; try again")
            raise UnknownParticipant(f"participant {participant_id} has not joined")
        return room, found

    def room(self, room_id: str) -> Room:
        room = self.rooms.get(RoomId(room_id))
        if room is None or room.closed:
            raise UnknownRoom(f"no room {room_id} here")
        return room

    def member(self, room_id: str, participant_id: str) -> ParticipantState:
        """``participant_id`` if it is in room ``room_id`` (admin calls)."""
        room = self.room(room_id)
        participant = room.participants.get(participant_id)
        if participant is None:
            raise UnknownParticipant(f"participant {participant_id} is not in room {room_id}")
        return participant

    # -- the core's shell: commit ----------------------------------------------------------------

    def commit(self, room: Room, events: list[Event]) -> Awaitable[None]:
        """Apply ``events`` to the room now and act on them once they are durable, in order.

        The returned awaitable completes when they are (at once without a journal); a caller
        answers its client only after it.  A journal that refuses or loses a write fails the room:
        it is unloaded, and the next use rebuilds it from what the journal has.
        """
        if room.failed is not None:
            raise room.failed
        if not events and not room.deferred:
            return _DONE
        hooked = room.state.hooks.last_seq
        machine.apply_all(room.state, events)
        hooks = self._new_hooks(room, hooked)
        self._index(room, events)
        if self.journal is None:
            self._effects(room, events, hooks)
            return _DONE
        # Deferred events were applied before these: written first, in the same record, order kept.
        self.tallies.journal_appends += 1
        body = encode_events(room.take_deferred() + events if room.deferred else events)
        # A journal that commits before returning (SQLite with durability normal or off): when nothing
        # of the room waits, the effects follow at once, and the request needs no task and no loop turn.
        append_now = getattr(self.journal, "append_now", None) if not room.pending else None
        if append_now is not None:
            try:
                offset = append_now(room.id, room.state.epoch, body)
            except Exception as exc:  # noqa: BLE001 - the room fails, as in _drain
                failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._fail_room(room, exc, failed)
                return failed
            if offset is not None:
                room.last_offset = offset
                snapshot = self._snapshot_due(room)
                if snapshot is not None:
                    self._spawn_snapshot(room, offset, snapshot)
                self._effects(room, events, hooks)
                return _DONE
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A journal that hands the outcome over when the record's transaction ends: drained then,
        # with no future and no loop turn between the commit and the effects.
        submit_then = getattr(self.journal, "submit_then", None)
        if submit_then is not None:
            landed = Landed(self._drain, room)
            if submit_then(room.id, room.state.epoch, body, landed.land):
                room.pending.append((landed, events, hooks, waiter, self._snapshot_due(room)))
                return waiter
        submit = getattr(self.journal, "submit", None)  # a journal that queues without a coroutine of its own
        append = (submit(room.id, room.state.epoch, body) if submit is not None
                  else asyncio.ensure_future(self.journal.append(room.id, room.state.epoch, body)))
        room.pending.append((append, events, hooks, waiter, self._snapshot_due(room)))
        append.add_done_callback(lambda _: self._drain(room))
        return waiter

    def commit_deferred(self, room: Room, events: list[Event]) -> None:
        """Apply ``events`` now and let their record wait: for receipt acks, whose loss in a crash
        only means a redelivery (the outbox keeps what was not acknowledged; clients drop a seq they
        have).  They go into the journal with the room's next record, or on their own after
        ``controller.ack_record_delay`` seconds or once ``controller.ack_record_max`` of them wait."""
        if room.failed is not None:
            raise room.failed
        if not events:
            return
        machine.apply_all(room.state, events)
        self._index(room, events)
        if self.journal is None:
            self._effects(room, events)
            return
        room.deferred.extend(events)
        if len(room.deferred) >= self.settings.ack_record_max or self.settings.ack_record_delay <= 0:
            self._write_deferred(room)
        elif room.deferred_timer is None:
            room.deferred_timer = asyncio.get_running_loop().call_later(
                self.settings.ack_record_delay, self._write_deferred, room)

    def _write_deferred(self, room: Room) -> None:
        """Write the room's deferred events now, as a record of their own (a failure fails the room,
        as for any record; nobody waits for this one)."""
        room.deferred_timer = None
        if room.failed is not None or not room.deferred:
            return
        written = self.commit(room, [])
        if isinstance(written, asyncio.Future):
            written.add_done_callback(lambda done: done.cancelled() or done.exception())

    def _snapshot_due(self, room: Room) -> bytes | None:
        """The room's state, encoded, when a snapshot is due with the record being appended (the state
        now includes it and everything before it: a snapshot as of its offset)."""
        room.since_snapshot += 1
        every = self.settings.snapshot_every
        if not every or room.since_snapshot < every:
            return None
        room.since_snapshot = 0
        return _snapshot_encoder.encode(room.state)

    def _drain(self, room: Room) -> None:
        """Act on the durable appends at the head of the room's queue, in append order."""
        pending = room.pending
        while pending:
            append = pending[0][0]
            error: BaseException | None
            if isinstance(append, Landed):
                if not append.landed:
                    return
                error, offset = append.error, append.offset
            elif not append.done():
                return
            else:
                error = append.exception() if not append.cancelled() else asyncio.CancelledError()
                offset = append.result() if error is None else 0
            _, events, hooks, waiter, snapshot = pending.popleft()
            if error is not None:
                self._fail_room(room, error, waiter)
                return
            if room.failed is None:
                room.last_offset = offset
                self._effects(room, events, hooks)
                if snapshot is not None:
                    self._spawn_snapshot(room, offset, snapshot)
            if not waiter.done():
                waiter.set_result(None)

    async def _durable(self, room: Room) -> None:
        """Until every record of the room appended so far, deferred ones included, is durable (or
        failed)."""
        if room.deferred and room.failed is None:
            self._write_deferred(room)
        while room.pending:
            await asyncio.gather(*(entry[3] for entry in room.pending), return_exceptions=True)

    def _stop_watching(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def _snapshot_asked(self, room_id: str) -> None:
        """The journal says a snapshot of the room is due whatever its record count (its replay would read
        far: the holder journal's stream moved on); saved as soon as the room's records are durable."""
        room = self.rooms.get(RoomId(room_id))
        if room is None or room.closed or room.failed is not None or RoomId(room.id) in self._asked:
            return
        self._asked.add(RoomId(room.id))
        self.spawn(self._asked_snapshot(room), name=f"snapshot:{room_id}")

    async def _asked_snapshot(self, room: Room) -> None:
        try:
            await self.snapshot(room)
        except Exception as exc:  # noqa: BLE001 - a snapshot only shortens replay: the records remain
            room.log.warning("snapshot_not_saved", offset=room.last_offset, error=repr(exc))
        finally:
            self._asked.discard(RoomId(room.id))

    def _spawn_snapshot(self, room: Room, offset: int, body: bytes) -> None:
        self.spawn(self._save_snapshot(room, Snapshot(offset=offset, epoch=room.state.epoch, body=body)),
                   name=f"snapshot:{room.id}")

    async def _save_snapshot(self, room: Room, snapshot: Snapshot) -> None:
        assert self.journal is not None
        try:
            await self.journal.save_snapshot(room.id, snapshot)
        except Exception as exc:  # noqa: BLE001 - a snapshot only shortens replay: the records remain
            room.log.warning("snapshot_not_saved", offset=snapshot.offset, error=repr(exc))

    def _fail_room(self, room: Room, error: BaseException, waiter: asyncio.Future[None]) -> None:
        """The journal lost a write: what this room holds in memory may be ahead of it.  The room is
        unloaded (its next use rebuilds it from the journal) and every waiting commit fails."""
        if isinstance(error, Fenced):
            room.log.warning("room_fenced", epoch=error.epoch, current=error.current)
            failure = ControllerError("the room moved to another controller")
        else:
            room.log.error("journal_write_failed", error=repr(error))
            self.tallies.journal_failures += 1
            failure = ControllerError("journal write failed; the room is being reloaded")
        self._unload(room, failure)
        if not isinstance(error, Fenced) and self.journal is not None:
            # Its participants stay: the room is rebuilt here from the journal as soon as it answers.
            for participant in room.participants:
                self._orphans[ParticipantId(participant)] = RoomId(room.id)
            self._lost_epochs[RoomId(room.id)] = room.state.epoch
            self._reload(RoomId(room.id))
        if not waiter.done():
            waiter.set_exception(failure)
            waiter.exception()

    def _unload(self, room: Room, failure: ControllerError) -> ControllerError:
        """Forget the room here (its state lives on in the journal): timers end, waiting commits
        fail with ``failure``, and its participants are no longer known here."""
        room.failed = failure
        room.cancel_timers()
        self.webhooks.forget(room.id)
        waiters = [entry[3] for entry in room.pending]
        room.pending.clear()
        for each in waiters:
            if not each.done():
                each.set_exception(failure)
                each.exception()  # retrieved: a commit nobody awaits must not log it again
        if self.rooms.get(RoomId(room.id)) is room:
            del self.rooms[RoomId(room.id)]
        for participant in list(room.participants):
            if self.participants.get(ParticipantId(participant)) is room:
                del self.participants[ParticipantId(participant)]
        return failure

    def _reload(self, room_id: RoomId) -> None:
        """Rebuild ``room_id`` here in the background, unless a round of attempts already runs."""
        running = self._reloads.get(room_id)
        if (running is not None and not running.done()) or self._stopped:
            return
        self._reloads[room_id] = self._background.spawn(
            self._reload_round(room_id, self._lost_epochs.get(room_id, 0)), f"reload:{room_id}")

    async def _reload_round(self, room_id: RoomId, lost_epoch: int) -> None:
        """Up to ``reload_attempts`` rebuilds of a room unloaded after a lost write, the delay doubling
        from ``reload_interval``.  A room that moved on meanwhile (its epoch in the journal is above the
        one it had here) or ended is let go: its participants are then unknown here."""
        assert self.journal is not None
        delay = self.settings.reload_interval
        attempts = self.settings.reload_attempts
        for attempt in range(1, attempts + 1):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8 * self.settings.reload_interval)
            if RoomId(room_id) in self.rooms:  # rebuilt meanwhile (a relogin's resume, a take_over)
                break
            try:
                if lost_epoch:
                    # Appended under the epoch the room had here: refused if another controller claimed it.
                    await self.journal.append(room_id, lost_epoch, encode_events([]))
                room = await self._open_room(room_id, create=False)
            except (Fenced, UnknownRoom) as exc:
                self.log.warning("room_reload_given_up", room=room_id, reason=repr(exc))
                break
            except Exception as exc:  # noqa: BLE001 - the journal is still down: try again later
                self.log.warning("room_reload_failed", room=room_id, attempt=attempt, error=repr(exc))
                continue
            room.release()
            self.settle(room)
            # Rebuilt, it holds everyone: their portals re-attach them here, as after a move.
            portals = sorted({p.portal for p in room.participants.values() if p.portal})
            self.log.info("room_reloaded", room=room_id, attempt=attempt, epoch=room.state.epoch,
                          portals=len(portals))
            await self._tell_portals(room, portals, to=self.worker_id)
            break
        else:
            self.log.error("room_reload_abandoned", room=room_id, attempts=attempts)
            return  # its participants stay orphans: the next call of one starts another round
        self._lost_epochs.pop(room_id, None)
        for participant, orphaned in list(self._orphans.items()):
            if orphaned == room_id:
                del self._orphans[participant]

    def _index(self, room: Room, events: list[Event]) -> None:
        """What this controller keeps beside the state: the participant index and hold timers."""
        for event in events:
            if isinstance(event, Notified):
                continue
            if isinstance(event, Joined):
                self.participants[ParticipantId(event.participant)] = room
            elif isinstance(event, Left):
                participant = ParticipantId(event.participant)
                room.cancel_hold_timer(participant)
                if self.participants.get(participant) is room:
                    del self.participants[participant]
            elif isinstance(event, Held):
                self._arm_hold(room, event)
            elif isinstance(event, Resumed):
                room.cancel_hold_timer(event.participant)

    @staticmethod
    def _new_hooks(room: Room, hooked: int) -> list[HookEvent]:
        """The webhook events the events just applied made (their seqs are above ``hooked``)."""
        outbox = room.state.hooks
        if outbox.last_seq == hooked:
            return []
        return [hook for hook in outbox.pending if hook.seq > hooked]

    def _hooks_done(self, room_id: str, instance: str, seq: int) -> None:
        """The room's webhook events up to ``seq`` were delivered or given up: out of its outbox
        (a deferred record: lost in a crash, they are sent again by the next holder)."""
        room = self.rooms.get(RoomId(room_id))
        if room is None or room.failed is not None or room.closed or room.state.hooks.instance != instance:
            return
        pending = room.state.hooks.pending
        if not pending or pending[0].seq > seq:
            return
        self.commit_deferred(room, [HooksSent(seq=seq)])

    def _effects(self, room: Room, events: list[Event], hooks: list[HookEvent] | None = None) -> None:
        """Act on durable events: deliver notifications, tell agents, send webhooks, log."""
        if hooks:
            self.webhooks.put(room.id, room.state.hooks.instance, hooks)
        for event in events:
            if isinstance(event, Notified):
                self.delivery.deliver(room.state, event)
            elif isinstance(event, (StreamRemoved, SubscriptionRemoved)):
                self.sessions.ended(room, event)
            elif isinstance(event, Joined):
                room.log.info("participant_joined", participant=event.participant, portal=event.portal,
                              role=event.role)
            elif isinstance(event, Left):
                room.log.info("participant_left", participant=event.participant, reason=event.reason)
        self.settle(room)

    def _arm_hold(self, room: Room, event: Held) -> None:
        room.cancel_hold_timer(event.participant)
        delay = max(0.0, event.deadline - self.clock())
        room.hold_timers[event.participant] = asyncio.get_running_loop().call_later(
            delay, self._hold_over, room, event.participant)

    async def once(
        self, room: Room, participant: ParticipantState, request_id: str | None,
        action: Callable[[], Awaitable[tuple[Any, list[Event]]]],
    ) -> Any:
        """Carry out a client request at most once per request id.

        ``action`` does the work and returns the result and the last events to commit; they are
        committed together with the answer (so a repeat after any crash finds either both or
        neither).  A repeat gets the first answer; a repeat while the first runs waits for it.  A
        request that failed is not remembered: its repeat runs again (a failure changed nothing).
        """
        if request_id is None:
            result, events = await action()
            await self.commit(room, events)
            return result
        key = (participant.id, request_id)
        while True:
            # The first attempt first: its answer is applied (in ``answers``) before its record is
            # durable, and a repeat must not be told ``ok`` for a write that may still be lost.
            running = room.inflight.get(key)
            if running is not None:
                try:
                    return await asyncio.shield(running)
                except ServiceError:
                    raise
                except Exception:  # noqa: BLE001 - the first attempt failed without a code
                    if room.failed is not None:  # its write was lost: what it applied is not to be trusted
                        raise room.failed from None
                    continue  # run it again
            if request_id in participant.answers:
                return participant.answers[request_id]
            break
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        room.inflight[key] = future
        try:
            result, events = await action()
            answered = machine.decide_answer(room.state, participant.id, request_id, result)
            await self.commit(room, [*events, *answered])
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()
            else:
                future.cancel()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            room.inflight.pop(key, None)

    def once_later(
        self, room: Room, participant: ParticipantState, request_id: str | None,
        decide: Callable[[], tuple[Any, list[Event]]],
    ) -> Any:
        """:meth:`once` for an action that does not suspend (``decide``), without a coroutine: its
        result when the commit is durable at once (no journal, or one that commits before returning),
        else a :class:`~rpc.base.Later` for it, done when the commit is (the RPC transport answers
        from there).  A request id whose first attempt is still running here (in ``room.inflight``)
        must go through :meth:`once` instead: it waits for that attempt."""
        if request_id is None:
            result, events = decide()
            written = self.commit(room, events)
            return Later(written, result) if isinstance(written, asyncio.Future) else result
        if request_id in participant.answers:  # nothing of it is in flight: its record is durable
            return participant.answers[request_id]
        key = (participant.id, request_id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        room.inflight[key] = future
        try:
            result, events = decide()
            answered = machine.decide_answer(room.state, participant.id, request_id, result)
            written = self.commit(room, [*events, *answered])
        except Exception as exc:
            room.inflight.pop(key, None)
            future.set_exception(exc)
            future.exception()
            raise
        if not isinstance(written, asyncio.Future):
            room.inflight.pop(key, None)
            future.set_result(result)
            return result

        def landed(done: asyncio.Future[None]) -> None:
            # Registered before the transport's callback: a repeat finds the first attempt settled.
            room.inflight.pop(key, None)
            if done.cancelled():
                future.cancel()
            elif done.exception() is not None:
                future.set_exception(done.exception())  # type: ignore[arg-type]
                future.exception()
            else:
                future.set_result(result)

        written.add_done_callback(landed)
        return Later(written, result)

    # -- rooms -----------------------------------------------------------------------------------

    async def _open_room(self, room_id: RoomId, *, create: bool = True) -> Room:
        """The room: the one here, or rebuilt from the journal, or (``create``) a new one; returned
        in use (the caller must ``release()`` it).  Without ``create``, a room that has no history
        is ``unknown_room``."""
        while True:
            room = self.rooms.get(room_id)
            if room is not None and not room.closed:
                room.use()
                return room
            loading = self._loading.get(room_id)
            if loading is None:
                loading = asyncio.create_task(self._create_room(room_id, create), name=f"room:{room_id}")
                self._loading[room_id] = loading
                loading.add_done_callback(lambda _: self._loading.pop(room_id, None))
            await asyncio.shield(loading)

    async def _create_room(self, room_id: RoomId, create: bool) -> Room:
        recovered = await self._recover(room_id)
        if recovered is not None:
            room = recovered
        elif not create:
            raise UnknownRoom(f"no room {room_id} here or in the journal")
        else:
            config = await self._room_config(room_id)
            epoch = await self._claim(room_id, 0)
            room = Room(machine.new_room(room_id), self.log)
            await self.commit(room, machine.decide_open(room_id, config, self.limits, epoch, self.worker_id,
                                                        instance=uuid.uuid4().hex[:16]))
            room.log.info("room_created", limit=config.participant_limit, roles=len(config.roles), epoch=epoch)
        self.rooms[room_id] = room
        self._lost_epochs.pop(room_id, None)
        for participant in room.participants:
            self.participants[ParticipantId(participant)] = room
            self._orphans.pop(ParticipantId(participant), None)
        if recovered is not None and room.state.transports:
            self.spawn(self.sessions.reclaim(room), name=f"reclaim:{room_id}")
        await self.worker.add_task(room_id)
        return room

    async def _claim(self, room_id: RoomId, last_epoch: int) -> int:
        """A new epoch for this controller's placement of the room (1 without a journal): above
        every epoch the room had, so an earlier holder that comes back is fenced off."""
        if self.journal is None:
            return 1
        epoch = last_epoch + 1
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                await self.journal.claim(room_id, epoch)
                return epoch
            except Fenced as fenced:  # someone holds a newer one (or it outlived a forget): go past it
                epoch = max(epoch, fenced.current) + 1
        raise ControllerError(f"room {room_id}: no epoch could be claimed in {_CLAIM_ATTEMPTS} attempts")

    async def _recover(self, room_id: RoomId) -> Room | None:
        """The room rebuilt from the journal (its snapshot, then the records after it), taken over
        under a new epoch; ``None`` when the journal has no open history of it."""
        if self.journal is None:
            return None
        started = time.perf_counter()
        snapshot = await self.journal.snapshot(room_id)
        read_snapshot = time.perf_counter()
        state = machine.new_room(room_id) if snapshot is None else _snapshot_decoder.decode(snapshot.body)
        records = await self.journal.replay(room_id, snapshot.offset if snapshot is not None else 0)
        read_records = time.perf_counter()
        last_epoch = snapshot.epoch if snapshot is not None else 0
        for record in records:
            machine.apply_all(state, decode_events(record.body))
            last_epoch = max(last_epoch, record.epoch)
        if (snapshot is None and not records) or state.closed:
            return None
        replayed = time.perf_counter()
        epoch = await self._claim(room_id, max(last_epoch, state.epoch))
        claimed = time.perf_counter()
        room = Room(state, self.log)
        room.last_offset = records[-1].offset if records else (snapshot.offset if snapshot is not None else 0)
        await self.commit(room, machine.decide_takeover(state, self.worker_id, epoch, self.clock()))
        # What its last holder may not have delivered goes out again, in seq order (at least once).
        self.webhooks.put(room.id, state.hooks.instance, list(state.hooks.pending))
        for participant in state.participants.values():
            if not participant.connected:
                self._arm_hold(room, Held(participant=participant.id, deadline=participant.hold_deadline or 0.0))
        done = time.perf_counter()
        self.tallies.rooms_recovered += 1
        room.log.info("room_recovered", epoch=epoch, records=len(records), participants=len(state.participants),
                      from_snapshot=snapshot is not None, snapshot_ms=_ms(read_snapshot - started),
                      records_ms=_ms(read_records - read_snapshot), apply_ms=_ms(replayed - read_records),
                      claim_ms=_ms(claimed - replayed), commit_ms=_ms(done - claimed))
        return room

    async def snapshot(self, room: Room) -> None:
        """Keep the room's whole state in the journal now, so that replay starts from here (the
        controller also does it every ``snapshot_every`` records on its own)."""
        if self.journal is None:
            return
        await self._durable(room)
        if room.failed is not None:
            raise room.failed
        room.since_snapshot = 0
        await self.journal.save_snapshot(room.id, Snapshot(offset=room.last_offset, epoch=room.state.epoch,
                                                           body=_snapshot_encoder.encode(room.state)))

    async def _room_config(self, room_id: RoomId) -> RoomConfig:
        try:
            return await RoomsClient(self.transport, self.rooms_service).get_room(
                room=room_id, timeout=self.settings.rooms_timeout)
        except RpcRemoteError as exc:
            if exc.code == UNKNOWN_ROOM:
                raise RoomConfigUnavailable(f"unknown room {room_id}") from None
            raise RoomConfigUnavailable(f"configuration of room {room_id}: {exc.code}: {exc.message}") from None
        except RpcError as exc:
            raise RoomConfigUnavailable(f"configuration of room {room_id} unavailable: {exc.code}") from None
        except msgspec.ValidationError as exc:
            raise RoomConfigUnavailable(f"configuration of room {room_id} is invalid: {exc}") from None

    def settle(self, room: Room) -> None:
        """Arm the grace period of a room that nobody uses any more."""
        if room.idle and not room.closed and room.grace_timer is None and room.failed is None and not self._stopped:
            room.grace_timer = asyncio.get_running_loop().call_later(
                self.settings.room_grace_period, self._grace_over, room)

    def _grace_over(self, room: Room) -> None:
        room.grace_timer = None
        if not room.idle or room.closed or room.failed is not None:
            return
        self.commit(room, machine.decide_close(room.state))
        room.log.info("room_closed")
        if self.rooms.get(RoomId(room.id)) is room:
            del self.rooms[RoomId(room.id)]
        self.spawn(self._lay_down(room), name=f"lay-down:{room.id}")

    async def _lay_down(self, room: Room) -> None:
        await self.worker.remove_task(room.id)
        if self.journal is not None:
            await self.journal.forget(room.id)

    # -- sessions --------------------------------------------------------------------------------

    async def join(self, room_id: RoomId, init: ParticipantInit, ticket_id: str, extension: bool) -> dict[str, Any]:
        self._check_not_joined(room_id, init, ticket_id)
        room = await self._open_room(room_id)
        try:
            self._check_not_joined(room_id, init, ticket_id)
            existing = room.participants.get(init.id)
            if existing is None:
                await self.commit(room, machine.decide_join(room.state, init, ticket_id, extension, self.clock()))
                existing = room.participants[init.id]
            return machine.join_result(room.state, existing)
        finally:
            room.release()
            self.settle(room)

    def _check_not_joined(self, room_id: RoomId, init: ParticipantInit, ticket_id: str) -> None:
        """A repeated join (same room, portal and ticket) is answered again; any other is refused."""
        room = self.participants.get(ParticipantId(init.id))
        existing = None if room is None else room.participants.get(init.id)
        if room is None or existing is None:
            return
        if room.id == room_id and existing.portal == init.portal and existing.ticket.current == ticket_id:
            return
        raise AlreadyJoined(f"participant {init.id} has already joined room {room.id}")

    async def leave(self, room: Room, participant_id: str, reason: str) -> None:
        """Remove the participant: its subscriptions and streams first, then ``participant leave``."""
        await self.commit(room, machine.decide_leave(room.state, participant_id, reason, self.clock()))

    def hold(self, room: Room, participant_id: str, portal: str) -> Awaitable[None]:
        """The portal lost the socket: keep the participant for ``reconnection_timeout``."""
        events = machine.decide_hold(room.state, participant_id, portal, self.clock())
        if events:
            room.log.info("participant_held", participant=participant_id, portal=portal,
                          timeout=room.state.limits.reconnection_timeout)
        return self.commit(room, events)

    def _hold_over(self, room: Room, participant_id: str) -> None:
        room.hold_timers.pop(participant_id, None)
        if room.failed is None and self.rooms.get(RoomId(room.id)) is room:
            self.commit(room, machine.decide_hold_over(room.state, participant_id, self.clock()))

    async def resume(
        self, participant_id: str, ticket_id: str, new_ticket_id: str, portal: WorkerId, last_seq: int | None,
        retry_key: str | None = None, room_id: str | None = None,
    ) -> dict[str, Any]:
        """A relogin through ``portal``: rotate the ticket, hand back what was missed, and make this
        the participant's only socket (the previous portal is told to close its socket: ``displace``).

        A participant of a room this controller does not hold (``room_id``: its room, from the
        ticket) is looked for in the journal: the room is rebuilt and taken over (its holder died,
        or this process restarted)."""
        if room_id is not None and ParticipantId(participant_id) not in self.participants and self.journal is not None:
            try:
                (await self._open_room(RoomId(room_id), create=False)).release()
            except UnknownRoom:
                pass
        room, participant = self.participant_room(participant_id)
        previous = participant.portal
        try:
            events = machine.decide_resume(room.state, participant_id, ticket_id, new_ticket_id, portal, last_seq,
                                           retry_key, self.clock())
        except machine.Rejected as rejected:
            await self.commit(room, rejected.events)
            raise rejected.error from None
        await self.commit(room, events)
        resumed = room.participants[participant_id]
        if previous != portal:
            self.spawn(self._displace(room, participant_id, previous, resumed.epoch), name=f"displace:{participant_id}")
        messages = machine.replay_of(resumed)
        room.log.info("participant_resumed", participant=participant_id, portal=portal, previous_portal=previous,
                      retry=events[0].retry if isinstance(events[0], Resumed) else False, epoch=resumed.epoch,
                      replayed=len(messages), last_seq=last_seq)
        return {"messages": [m.to_wire() for m in messages], "last_seq": resumed.outbox.last_seq,
                "epoch": resumed.epoch, "origin": resumed.origin}

    async def take_over(self, room_id: RoomId) -> Room:
        """The room, rebuilt from the journal if it is not here (``unknown_room`` without history).

        A drained or stopping controller refuses a room that is not here (``controller_draining``):
        it would have to move it on, or would exit with it."""
        if self.journal is None:
            raise UnknownRoom(f"no room {room_id} here, and no journal to rebuild it from")
        if (self._draining or self._stopped) and room_id not in self.rooms and room_id not in self._loading:
            self.log.info("take_over_refused", room=room_id, reason="stopping" if self._stopped else "draining")
            raise Draining()
        room = await self._open_room(room_id, create=False)
        room.release()
        self.settle(room)
        return room

    async def _displace(self, room: Room, participant_id: str, portal: str, epoch: int) -> None:
        """Tell ``portal`` to close the participant's socket there (no hold, no leave).  Best effort:
        a portal that does not get it cannot act for the participant anyway (``not_current_portal``)."""
        try:
            await PortalClient(self.transport, portal).displace(participant=participant_id, epoch=epoch,
                                                                timeout=self.settings.portal_timeout)
        except RpcError as exc:
            room.log.info("displace_not_delivered", participant=participant_id, portal=portal, error=exc.code)

    def check_portal(self, room: Room, participant: ParticipantState, portal: str) -> None:
        """Refuse a call for ``participant`` from a portal that is not its current one."""
        if participant.portal != portal:
            room.log.info("stale_portal_refused", participant=participant.id, portal=portal,
                          current=participant.portal)
            raise NotCurrentPortal()

    async def drop(self, room: Room, participant: ParticipantState, reason: str) -> None:
        """Tell the portal to drop the client (errors ignored), then remove the participant."""
        try:
            await PortalClient(self.transport, participant.portal).drop(participant=participant.id, reason=reason,
                                                                        timeout=self.settings.portal_timeout)
        except RpcError as exc:
            room.log.info("drop_not_delivered", participant=participant.id, portal=participant.portal,
                          error=exc.code)
        await self.leave(room, participant.id, reason="dropped")

    # -- drain: live migration -------------------------------------------------------------------

    def migrate(self) -> int:
        """Move every room to other controllers, one at a time (this controller was drained), then
        set :attr:`finished`.  Needs a journal (the next controller rebuilds each room from it);
        returns the number of rooms to move (0 without a journal: the rooms stay until they end).

        From now on a room handed here is refused (``take_over``: ``controller_draining``).  While
        no other controller takes rooms (all drained, full or gone) the rooms stay and are served
        here, and the migration waits (``migration_waiting``), asking again every
        ``migration_retry_interval``."""
        if self.journal is None:
            self.log.warning("migration_impossible", reason="no journal", rooms=len(self.rooms))
            return 0
        self._draining = True
        if self._migration is None or self._migration.done():
            self._migration = self._background.spawn(self._migrate_all(), f"migrate:{self.worker_id}")
        return len(self.rooms)

    async def _migrate_all(self) -> None:
        moved = 0
        waiting = False
        while True:
            if self._loading:  # a room taken over just before the drain: it moves on too, once here
                await asyncio.gather(*self._loading.values(), return_exceptions=True)
                continue
            rooms = list(self.rooms.values())
            if not rooms:
                break
            outcome = "wait" if not await self._another_controller() else ""
            for room in rooms if not outcome else []:
                outcome = await self._hand_over(room)
                if outcome == "moved":
                    moved += 1
                elif outcome == "stopped":
                    self.log.warning("migration_stopped", room=room.id, moved=moved, left=len(self.rooms))
                    return
                elif outcome == "wait":
                    break
            if outcome == "wait" and not waiting:
                self.log.warning("migration_waiting", reason="no other controller takes rooms", moved=moved,
                                 left=len(self.rooms))
            elif outcome != "wait" and waiting:
                self.log.info("migration_resumed", left=len(self.rooms))
            waiting = outcome == "wait"
            if outcome != "moved":  # nothing moved in this round: ask again later, not in a loop
                await asyncio.sleep(self.settings.migration_retry_interval)
        self.log.info("migration_done", moved=moved)
        self.finished.set()

    async def _another_controller(self) -> bool:
        """Whether some other controller takes new rooms now (this one, drained, is not counted)."""
        try:
            readiness = await ClusterClient(self.transport, self.worker_settings.cluster_name).readiness(
                purpose=PURPOSE, timeout=self.settings.rooms_timeout)
        except RpcError as exc:
            self.log.warning("migration_readiness_unknown", error=exc.code)
            return False
        return readiness.schedulable > 0

    async def _hand_over(self, room: Room) -> str:
        """Hand one room to another controller through the journal: every write of it durable, the
        room let go here, its task given up, the cluster asked to place it elsewhere and that
        controller told to rebuild it (``take_over``), then every portal with a participant of it
        told to move those sockets there (``room_moved``).  A controller that refuses it because it
        is draining too loses the reservation and the room is placed again (the cluster manager
        places nothing on a drained controller).  ``"moved"``; ``"skipped"`` (not here, or failed);
        else the room is rebuilt here from the journal and stays: ``"wait"`` if no other controller
        could take it, ``"stopped"`` for another failure."""
        if self.rooms.get(RoomId(room.id)) is not room or room.failed is not None:
            return "skipped"
        await self._durable(room)
        portals = sorted({p.portal for p in room.participants.values() if p.connected})
        self._unload(room, ControllerError("the room moved to another controller"))
        await self.worker.end_task(room.id)  # forgotten at once: no lingering reservation here
        cluster = ClusterClient(self.transport, self.worker_settings.cluster_name)
        try:
            for attempt in range(1, _PLACEMENTS + 1):
                placed = await cluster.schedule(purpose=PURPOSE, task=room.id, preference={},
                                                timeout=self.settings.rooms_timeout)
                target = placed.id
                if target == self.worker_id:
                    # Undrained meanwhile: the room stays, and so does the rest (the drain is over).
                    raise RpcRemoteError("placed_here", "only this controller can take the room")
                try:
                    await ControllerClient(self.transport, target).take_over(room=room.id,
                                                                             timeout=self.settings.migration_timeout)
                    break
                except RpcRemoteError as exc:
                    if exc.code != Draining.error_code or attempt == _PLACEMENTS:
                        raise
                    room.log.info("room_refused", to=target, error=exc.code, attempt=attempt)
                    await cluster.unschedule(worker_id=target, task=room.id,
                                             timeout=self.settings.rooms_timeout)
        except RpcError as exc:
            room.log.warning("room_not_moved", error=exc.code)
            await self._open_room(RoomId(room.id), create=False)
            self.rooms[RoomId(room.id)].release()
            if exc.code == "placed_here":  # undrained: rooms are welcome here again
                self._draining = False
            return "wait" if exc.code in _NO_CONTROLLER else "stopped"
        await self._tell_portals(room, portals, to=target)
        room.log.info("room_moved", to=target, portals=len(portals))
        return "moved"

    async def _tell_portals(self, room: Room, portals: list[str], *, to: str) -> None:
        """Tell each portal to move its sockets of ``room`` from here to controller ``to``."""
        for portal in portals:
            try:
                await PortalClient(self.transport, portal).room_moved(room=room.id, controller=self.worker_id, to=to,
                                                                      timeout=self.settings.portal_timeout)
            except RpcError as exc:  # that portal's sockets find the room again on their next relogin
                room.log.warning("room_moved_not_told", portal=portal, error=exc.code)

    # -- faults ----------------------------------------------------------------------------------

    async def _on_fault(self, topic: str, payload: Any) -> None:
        try:
            fault = msgspec.convert(payload, WorkerExit)
        except msgspec.ValidationError:
            self.log.warning("fault_event_invalid", topic=topic)
            return
        if fault.type != "worker":
            return
        if fault.purpose == _PORTAL_PURPOSE:
            await self._portal_lost(WorkerId(fault.id))
        elif fault.purpose == MEDIA_PURPOSE:
            await self.sessions.agent_lost(WorkerId(fault.id))

    def _portal_unreachable(self, portal: WorkerId) -> None:
        """Deliveries to ``portal`` found nobody serving it: treated as its ``exit.quit`` (which may
        have been missed), so its participants are held, not left connected to nothing.  It may be
        alive though (its sockets open): they are offered back to it (:class:`ReattachOffers`)."""
        self.spawn(self._portal_lost(portal, reason="unreachable"), name=f"portal-unreachable-{portal}")

    async def _portal_lost(self, portal: WorkerId, reason: str = "exit") -> None:
        held: list[str] = []
        pending = []
        for room in list(self.rooms.values()):
            for participant in [p for p in room.participants.values() if p.portal == portal and p.connected]:
                pending.append(self.hold(room, participant.id, portal))
                held.append(participant.id)
        await asyncio.gather(*pending, return_exceptions=True)
        self.log.warning("portal_lost", portal=portal, held=len(held), reason=reason)
        await self.delivery.forget_portal(portal)
        if reason == "unreachable":
            self.reattach_offers.offer(portal, held)

    def _held_for(self, portal: WorkerId, participants: Collection[str]) -> list[str]:
        """Those of ``participants`` held here for ``portal`` whose hold has not run out."""
        now = self.clock()
        held = []
        for participant_id in participants:
            room = self.participants.get(ParticipantId(participant_id))
            participant = None if room is None else room.participants.get(participant_id)
            if (participant is not None and not participant.connected and participant.portal == portal
                    and participant.hold_deadline is not None and now < participant.hold_deadline):
                held.append(participant_id)
        return held

    async def _on_loss(self, tasks: list[str]) -> None:
        """The cluster manager forgot this worker: report the rooms that still live here.

        With a journal, a room may have moved meanwhile (this process was frozen or cut off long
        enough to be declared lost): each is first probed with an empty record, which the journal
        refuses (``Fenced``) once another controller claimed the room; such a room is unloaded here,
        not reported, so this controller never fights its successor over it."""
        for task in tasks:
            room = self.rooms.get(RoomId(task))
            if room is None or room.closed or room.failed is not None:
                continue
            if self.journal is not None:
                try:
                    await self.commit_probe(room)
                except Fenced as fenced:
                    room.log.warning("room_moved_away", epoch=room.state.epoch, current=fenced.current)
                    self._unload(room, ControllerError("the room moved to another controller"))
                    continue
                except Exception as exc:  # noqa: BLE001 - the journal is down: report it, the next probe decides
                    room.log.warning("room_probe_failed", error=repr(exc))
            await self.worker.add_task(task)

    async def commit_probe(self, room: Room) -> None:
        """Append an empty record under the room's epoch: ``Fenced`` if the room moved on."""
        assert self.journal is not None
        await self.journal.append(room.id, room.state.epoch, encode_events([]))


class _Done:
    """An awaitable that is complete already (a commit without a journal)."""

    def __await__(self) -> Any:
        return
        yield


_DONE: Awaitable[None] = _Done()

