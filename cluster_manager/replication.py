"""Streaming the active cluster manager's changes to its standbys.

The active manager numbers every change it applies (``seq``, from 1 after the state it started
from) and :class:`ChangeFeed` publishes them, in order and in batches, as the event
``cluster.<name>.changes`` with the leader's ``epoch``.  A standby's :class:`Replica` subscribes
first, then asks the active for a snapshot (``replica_snapshot``: the registry, its ``seq`` and
``epoch``), drops what the snapshot already holds and applies the rest in ``seq`` order to its own
:class:`~cluster_manager.registry.Registry`.  A batch from a lower epoch than the replica's is
ignored (a deposed leader); a gap in ``seq`` (a batch the feed dropped because its buffer was full
or the broker refused it) makes the replica take a new snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from contracts.cluster import ClusterClient
from rpc import RpcError, Subscription, Transport

from .changes import AnyChange
from .eventlog import log_event
from .messages import Snapshot
from .registry import Registry
from .settings import ClusterManagerSettings

__all__ = ["ChangeBatch", "ReplicaState", "ChangeFeed", "Replica", "changes_topic"]

#: The manager's RPC method a replica takes its snapshot from.


def changes_topic(name: str) -> str:
    """The event topic the changes of the cluster manager ``name`` are published on."""
    return f"cluster.{name}.changes"


class ChangeBatch(msgspec.Struct, frozen=True):
    """Changes ``first``, ``first + 1``, … of the leader of ``epoch``."""

    epoch: int
    first: int
    changes: list[AnyChange]


class ReplicaState(msgspec.Struct, frozen=True):
    """What a replica starts from: the registry after change ``seq`` of the leader of ``epoch``."""

    epoch: int
    seq: int
    snapshot: Snapshot


class ChangeFeed:
    """The active side: numbers changes and publishes them in order, ``replication_batch`` at a time.

    :meth:`append` never waits (handlers stay atomic); one publisher task sends.  At most
    ``replication_buffer`` changes wait; beyond that the oldest are dropped and standbys resync.
    """

    def __init__(self, transport: Transport, settings: ClusterManagerSettings, *, epoch: int, seq: int = 0) -> None:
        self._transport = transport
        self._settings = settings
        self._topic = changes_topic(settings.name)
        self.epoch = epoch
        self._seq = seq
        self._waiting: deque[AnyChange] = deque()
        self._waiting_first = seq + 1
        self._wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self.dropped = 0
        #: Changes up to this one were handed to the broker (or given up on).
        self._done_seq = seq
        self._done = asyncio.Condition()

    @property
    def seq(self) -> int:
        """The number of the last change appended."""
        return self._seq

    def append(self, change: AnyChange) -> None:
        self._seq += 1
        self._waiting.append(change)
        if len(self._waiting) > self._settings.replication_buffer:
            self._waiting.popleft()
            self._waiting_first += 1
            self.dropped += 1
        self._wake.set()

    async def published(self, seq: int) -> None:
        """Return once change ``seq`` was published (confirmed by the broker) or given up on."""
        if self._done_seq >= seq:
            return
        async with self._done:
            await self._done.wait_for(lambda: self._done_seq >= seq)

    def start(self) -> None:
        if self._publisher is None:
            self._publisher = asyncio.create_task(self._publish_loop(), name=f"cluster-feed:{self._settings.name}")

    async def stop(self, *, flush: bool = True) -> None:
        """Publish what waits (each batch bounded by ``event_publish_timeout``; dropped with
        ``flush=False``), then stop."""
        if self._publisher is None:
            return
        self._publisher.cancel()
        try:
            await self._publisher
        except asyncio.CancelledError:
            pass
        self._publisher = None
        if not flush:
            self._waiting.clear()
            async with self._done:
                self._done_seq = self._seq  # nobody waits for a deposed leader's changes
                self._done.notify_all()
        while self._waiting:
            await self._publish_one()

    async def _publish_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await self._publish_one()

    async def _publish_one(self) -> None:
        count = min(len(self._waiting), self._settings.replication_batch)
        first = self._waiting_first
        changes = [self._waiting.popleft() for _ in range(count)]
        self._waiting_first += count
        batch = ChangeBatch(self.epoch, first, changes)
        try:
            async with asyncio.timeout(self._settings.event_publish_timeout):
                await self._transport.publish_event(self._topic, msgspec.to_builtins(batch))
        except (RpcError, TimeoutError) as exc:
            self.dropped += count
            log_event(logging.WARNING, "changes_not_published", first=first, count=count, error=str(exc))
        async with self._done:
            self._done_seq = first + count - 1
            self._done.notify_all()


class Replica:
    """The standby side: a registry kept equal to the active's by its changes.

    :param transport: a started transport that reaches the active manager (``settings.name``).
    :param clock: seconds, monotonic: reservations are counted on it from when a change is applied.

    ``await replica.start()`` returns once the first snapshot is loaded; :attr:`seq` and
    :attr:`epoch` say how far it is.
    """

    def __init__(
        self, transport: Transport, settings: ClusterManagerSettings, *, clock: Callable[[], float] | None = None,
        admin_key: str = "",
    ) -> None:
        self._transport = transport
        self._settings = settings
        self._admin_key = admin_key
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        self.registry = Registry(
            strategies=settings.strategies,
            default_reserve_time=settings.schedule_reserve_time,
            default_max_load=settings.default_max_load,
            **kwargs,
        )
        self.epoch = 0
        self.seq = 0
        self._synced = False
        #: Batches that arrived before the snapshot, or ahead of a gap, by their first seq.
        self._pending: dict[int, ChangeBatch] = {}
        self._subscription: Subscription | None = None
        self._syncer: asyncio.Task[None] | None = None
        self._in_sync = asyncio.Event()
        self._detached = False
        self.resyncs = 0

    async def start(self) -> None:
        self._subscription = await self._transport.subscribe_events(changes_topic(self._settings.name), self._on_batch)
        self._resync()
        await self._in_sync.wait()

    def detach(self) -> None:
        """Stop applying changes at once (its registry is being taken over); :meth:`stop` cleans up."""
        self._detached = True
        self._pending.clear()
        self._in_sync.set()  # a start() still waiting returns

    async def stop(self) -> None:
        self._detached = True
        if self._syncer is not None:
            self._syncer.cancel()
            try:
                await self._syncer
            except asyncio.CancelledError:
                pass
            self._syncer = None
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None

    @property
    def synced(self) -> bool:
        """Whether a snapshot is loaded and changes are being applied (not waiting for a new one)."""
        return self._synced

    def snapshot(self) -> dict[str, Any]:
        """The replica's registry as JSON (the shape of ``ClusterManager.snapshot``)."""
        return msgspec.to_builtins(self.registry.snapshot())  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ internals

    async def _on_batch(self, topic: str, payload: Any) -> None:
        if self._detached:
            return
        try:
            batch = msgspec.convert(payload, ChangeBatch)
        except msgspec.ValidationError as exc:
            log_event(logging.WARNING, "changes_malformed", error=str(exc))
            return
        if batch.epoch < self.epoch:
            log_event(logging.INFO, "changes_of_old_epoch", epoch=batch.epoch, current=self.epoch)
            return
        if len(self._pending) >= self._settings.replication_pending:
            self._pending.clear()
            self._resync()
        self._pending[batch.first] = batch
        if self._synced:
            self._drain_pending()

    def _drain_pending(self) -> None:
        while self._pending:
            first = min(self._pending)
            batch = self._pending[first]
            if batch.epoch < self.epoch:
                del self._pending[first]
                continue
            if batch.epoch > self.epoch:
                # A new leader numbers on from its own copy, which may lack what a deposed leader
                # published after it was taken: start again from the new leader's snapshot.
                self._pending.clear()
                self._resync()
                return
            if first > self.seq + 1:
                return  # a gap: wait for it (the bound on pending batches ends a real loss)
            del self._pending[first]
            self.epoch = batch.epoch
            for offset, change in enumerate(batch.changes):
                if first + offset > self.seq:
                    self.registry.apply(change)
                    self.seq = first + offset

    def _resync(self) -> None:
        self._synced = False
        self.resyncs += 1
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.create_task(self._sync_loop(), name=f"cluster-replica:{self._settings.name}")

    async def _sync_loop(self) -> None:
        settings = self._settings
        while True:
            try:
                answer = await ClusterClient(self._transport, settings.name).replica_snapshot(
                    admin_key=self._admin_key, timeout=settings.replication_snapshot_timeout)
                state = msgspec.convert(answer, ReplicaState)
            except (RpcError, msgspec.ValidationError) as exc:
                log_event(logging.WARNING, "replica_snapshot_failed", error=str(exc))
                await asyncio.sleep(settings.replication_retry_interval)
                continue
            if state.epoch < self.epoch:
                await asyncio.sleep(settings.replication_retry_interval)
                continue
            if self._detached:
                return
            self.registry.restore(state.snapshot)
            self.epoch, self.seq = state.epoch, state.seq
            self._synced = True
            self._drain_pending()
            log_event(logging.INFO, "replica_synced", epoch=self.epoch, seq=self.seq)
            self._in_sync.set()
            return
