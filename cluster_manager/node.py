"""One of several cluster-manager processes: a hot standby until the broker makes it the active one.

Every :class:`ManagerNode` serves the cluster manager's RPC service as a *single-active* service
(over RabbitMQ a quorum queue with ``x-single-active-consumer``, manual acks): the broker hands
requests to one consumer only, and to the next one when that consumer's connection goes.  There is
no election of our own and no "you are active" signal: **the first request a node receives makes it
the active manager.**  Until then its :class:`~cluster_manager.replication.Replica` follows the
active's changes; on its first request it serves at once from that copy, as leader epoch + 1,
numbering its own changes on from the copy's.  A node that starts while no manager is active gets
its own snapshot request, and starts as a fresh manager (the freshman window).

Fencing a frozen-then-resumed leader: the active node sends itself a tick through the queue every
``leader_tick_interval``; each tick renews its lease of ``leader_lease``.  A frozen leader sends
none, so when it resumes its lease has run out: it declines the requests still in its socket buffer
(they go back to the queue, for the consumer that is active now), its sweep and hand-overs do
nothing, and it steps down to a standby again, re-syncing from the new leader.  The lease is shorter
than the broker's takeover (2–3 × the AMQP heartbeat), so two nodes never act at once, and standbys
ignore changes of a lower epoch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from alerts import Fault, FaultReporter
from background import Background
from credentials import AdminKeys
from rpc import Declined, RpcError, ServiceHandle, Subscription, Transport, rpc_method, rpc_method_names

from .eventlog import events, log_event
from .faults import FaultLog
from .manager import ClusterManager
from .registry import Registry
from .replication import Replica
from .service import ManagerService
from .settings import ClusterManagerSettings
from .standbys import StandbyBoard, StandbyNotice, standbys_topic
from .tallies import ManagerTallies

__all__ = ["ManagerNode", "ACTIVE", "STANDBY"]

ACTIVE = "active"
STANDBY = "standby"
_TICK = "leader_tick"
_ROLE = "node_role"


class ManagerNode:
    """A cluster-manager process with standbys: serves ``settings.name`` single-active.

    :param transport: a started transport.
    :param settings: the manager's settings (``replication`` is turned on).
    :param clock: seconds, monotonic.
    """

    def __init__(
        self,
        transport: Transport,
        settings: ClusterManagerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        admin_keys: AdminKeys | None = None,
        alerts: FaultReporter | None = None,
    ) -> None:
        self.transport = transport
        self.settings = msgspec.structs.replace(settings or ClusterManagerSettings(), replication=True)
        #: Where every manager this node runs reports the faults it decides (the alert service).
        self.alerts = alerts or FaultReporter(transport, self.settings.name)
        self._clock = clock
        self._rng = rng
        self._admin_keys = admin_keys
        self._replica = Replica(transport, self.settings, clock=clock, admin_key=self._own_key())
        self._manager: ClusterManager | None = None
        self._last_tick = 0.0
        #: When a tick was sent after the lease had run out (``None``: none such): a leader steps
        #: down when that tick has not come back within a lease, so not while its broker is away.
        self._probe_at: float | None = None
        #: The registry and epoch of the last time this node was active (a deposed leader's copy).
        self._last_registry: Registry | None = None
        self._last_epoch = 0
        self._service: ServiceHandle | None = None
        self._standbys_heard: Subscription | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._background = Background(events)
        self._stopped = False
        self._serving = False
        #: Times this node became active, and stepped down.
        self.promotions = 0
        self.demotions = 0
        #: Counts for ``/metrics``: every manager this node runs adds to them.
        self.tallies = ManagerTallies()
        #: The fault timeline every manager this node runs records in (``subscribe`` to hear them).
        self.fault_log = FaultLog(self.settings.fault_log_size)
        #: The standbys heard from lately (read by the active manager's ``overview``).
        self.standbys = StandbyBoard(self.settings.standby_expiry, self.settings.standby_limit,
                                     clock=clock)

    @property
    def name(self) -> str:
        return self.settings.name

    def _own_key(self) -> str:
        return self._admin_keys.own() if self._admin_keys is not None else ""

    @property
    def role(self) -> str:
        """``'active'`` or ``'standby'``."""
        return ACTIVE if self._manager is not None else STANDBY

    @property
    def serving(self) -> bool:
        """Started (active or a synced-or-syncing standby) and not stopped."""
        return self._serving

    @property
    def manager(self) -> ClusterManager | None:
        """The active manager, while this node is the active one."""
        return self._manager

    @property
    def replica(self) -> Replica:
        return self._replica

    async def start(self) -> None:
        """Serve (as a waiting consumer, or the active one) and sync from the active manager, or
        become it when there is none; returns once it is one or the other.

        A start that fails is undone (:meth:`stop`) and its error raised; a node that failed to
        start or was stopped cannot be started again."""
        if self._stopped:
            raise RuntimeError("this ManagerNode was stopped; make a new one")
        async with AsyncExitStack() as undo:
            undo.push_async_callback(self.stop)
            self._standbys_heard = await self.transport.subscribe_events(standbys_topic(self.name),
                                                                         self._standby_heard)
            self._service = await self.transport.serve(self.name, _Gate(self), single_active=True)
            node = self.transport.node_id
            # Announced from the start, synced or not: a standby that cannot sync (no active manager
            # answers it, or refuses its key) is shown to operators as such, not left out.
            self._background.spawn(self._announce_loop(), f"cluster-announce:{node}")
            syncing = self._background.spawn(self._replica.start(), f"cluster-sync:{node}")  # ends when the replica stops
            promoted = self._background.spawn(self._until_active(), f"cluster-promotion:{node}")
            await asyncio.wait([syncing, promoted], return_when=asyncio.FIRST_COMPLETED)
            promoted.cancel()
            if syncing.done():
                syncing.result()  # a replica that could not start fails the start
            undo.pop_all()
        self._serving = True
        log_event(logging.INFO, "manager_node_started", name=self.name, role=self.role)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._serving = False
        if self._ticker is not None:
            self._ticker.cancel()
        if self._service is not None:
            await self._service.stop()
        if self._standbys_heard is not None:
            await self._standbys_heard.cancel()
        if self._manager is not None:
            await self._manager.stop()
        await self._replica.stop()
        await self._background.stop()

    # ------------------------------------------------------------------ leadership

    def leads(self) -> bool:
        """Active, and its lease (renewed by its own ticks through the queue) has not run out."""
        return self._manager is not None and self._clock() - self._last_tick <= self.settings.leader_lease

    async def _until_active(self) -> None:
        while self._manager is None:
            await asyncio.sleep(self.settings.leader_tick_interval)

    def _leader(self, method: str) -> ClusterManager:
        """The manager to handle a request with: becomes active on the first request; declines while
        the lease has run out (the tick loop decides whether it steps down)."""
        if self._stopped:
            raise Declined("stopping")
        manager = self._manager
        if manager is None:
            return self._promote(method)
        if method != _TICK and not self.leads():
            raise Declined("the leader lease ran out")
        return manager

    def _promote(self, method: str) -> ClusterManager:
        replica = self._replica
        replica.detach()
        synced = replica.synced
        registry: Registry | None
        if synced:
            registry, seq = replica.registry, replica.seq
        else:
            # No active manager answered this node's snapshot request (it got the request itself):
            # its own copy from when it last led is the best there is (a broker restart deposed
            # it); a node that never led starts empty, in the freshman window.
            registry, seq = self._last_registry, 0
        epoch = max(replica.epoch, self._last_epoch) + 1
        manager = ClusterManager(
            self.transport, self.settings, clock=self._clock, fresh=registry is None, rng=self._rng,
            admin_keys=self._admin_keys, epoch=epoch, registry=registry, seq=seq, may_act=self.leads,
            tallies=self.tallies, faults=self.fault_log, alerts=self.alerts,
            standbys=lambda: self.standbys.views(exclude=self.transport.node_id),
        )
        self._probe_at = None
        manager.activate()
        self._background.spawn(manager.watch_transport(), "cluster-watch-transport")
        self._manager = manager
        self._last_tick = self._clock()
        self.promotions += 1
        self._background.spawn(replica.stop(), "cluster-replica-stop")
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"cluster-leader-ticks:{self.name}")
        log_event(logging.WARNING, "manager_active", name=self.name, node=self.transport.node_id, epoch=epoch,
                  seq=replica.seq,
                  from_copy=synced, first_request=method)
        if epoch > 1:  # another node led before: a standby (or this node again) took over
            self.alerts.report(Fault(
                kind="manager_failover", severity="warning", subject=self.name, group=f"manager:{epoch}",
                summary=f"cluster manager {self.name}: {self.transport.node_id} became the active one (epoch {epoch})",
                details={"epoch": epoch, "from_copy": synced}))
        return manager

    def _demote(self) -> None:
        manager, self._manager = self._manager, None
        if manager is None:
            return
        self.demotions += 1
        self._last_registry, self._last_epoch = manager.registry, manager.epoch or 0
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        log_event(logging.WARNING, "manager_deposed", name=self.name, epoch=manager.epoch)
        self._replica = Replica(self.transport, self.settings, clock=self._clock, admin_key=self._own_key())
        self._background.spawn(self._step_down(manager, self._replica), "cluster-step-down")

    async def _step_down(self, manager: ClusterManager, replica: Replica) -> None:
        # Served again, it waits behind the standbys (the broker gives the queue to one of them if
        # it had not yet), and follows the active manager from its snapshot.
        service, self._service = self._service, None
        if service is not None:
            await service.stop()
        await manager.stop(flush=False)
        if not self._stopped:
            self._service = await self.transport.serve(self.name, _Gate(self), single_active=True)
            await replica.start()

    async def _tick_loop(self) -> None:
        while True:
            if self._probe_at is not None and self._clock() - self._probe_at > self.settings.leader_lease:
                # A tick sent after the lease ran out did not come back: the broker gave the queue
                # to another node (this one was frozen or cut off).  Step down even with no request.
                self._ticker = None
                self._demote()
                return
            try:
                await self.transport.cast(self.name, _TICK, {})
                if self._probe_at is None and not self.leads():
                    self._probe_at = self._clock()
            except RpcError as exc:
                log_event(logging.WARNING, "leader_tick_not_sent", name=self.name, error=str(exc))
            await asyncio.sleep(self.settings.leader_tick_interval)

    # ------------------------------------------------------------------ standbys

    async def _standby_heard(self, topic: str, payload: Any) -> None:
        try:
            self.standbys.heard(msgspec.convert(payload, StandbyNotice))
        except msgspec.ValidationError as exc:
            log_event(logging.WARNING, "standby_notice_malformed", error=str(exc))

    async def _announce_loop(self) -> None:
        """While a standby, say so every ``standby_announce_interval`` (see :mod:`cluster_manager.standbys`),
        the first time one interval after the start (a node that becomes the active one at its start, on
        its own first request, is then never announced as a standby)."""
        while True:
            await asyncio.sleep(self.settings.standby_announce_interval)
            if self._manager is None:
                replica = self._replica
                notice = StandbyNotice(node=self.transport.node_id, synced=replica.synced, epoch=replica.epoch)
                try:
                    await self.transport.publish_event(standbys_topic(self.name), msgspec.to_builtins(notice))
                except RpcError as exc:
                    log_event(logging.INFO, "standby_notice_not_sent", error=str(exc))

    # ------------------------------------------------------------------ node-only methods

    async def leader_tick(self) -> None:
        self._leader(_TICK)
        self._last_tick = self._clock()
        self._probe_at = None

    async def node_role(self) -> dict[str, Any]:
        """``{node, role, epoch}`` of the node that answers (the active one)."""
        manager = self._leader(_ROLE)
        return {"node": self.transport.node_id, "role": ACTIVE, "epoch": manager.epoch}


def _forward(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(self: _Gate, /, **kwargs: Any) -> Any:
        manager = self._node._leader(name)
        result = await getattr(manager.service, name)(**kwargs)
        # Answered only once its changes reached the standbys' queues: what a caller was told
        # survives a failover.
        await manager.replicated()
        return result

    return rpc_method(call)


class _Gate:
    """What a node serves: every manager method, forwarded to the active manager (see
    :meth:`ManagerNode._leader`), plus the node's own ``leader_tick`` and ``node_role``."""

    def __init__(self, node: ManagerNode) -> None:
        self._node = node

    @rpc_method
    async def leader_tick(self) -> None:
        await self._node.leader_tick()

    @rpc_method
    async def node_role(self) -> dict[str, Any]:
        return await self._node.node_role()


for _name in rpc_method_names(ManagerService):
    setattr(_Gate, _name, _forward(_name, getattr(ManagerService, _name)))
