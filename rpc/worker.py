"""The cluster-worker client: how a portal or controller joins the cluster manager and stays there.

- ``start()`` joins (retrying within ``join_retries``), then keeps alive every
  ``keepalive_interval`` and reports its load.
- An answer of ``whoareyou`` to a keepalive, or more than ``keepalive_max_failures`` failed
  keepalives in a row, starts recovery: rejoin; if the manager says it is freshly started
  (``initializing``), re-report every task so running sessions keep their mappings; otherwise the
  manager has forgotten this worker's tasks and the owner is told through ``on_loss(tasks)``.
  ``on_recovery()`` runs after either.
- A keepalive that failed because this worker's own transport has lost the broker does not count:
  after a broker outage the manager, cut off as well, gives every worker time to report again, and
  a rejoin would needlessly drop this worker's tasks.

Every wait (between join attempts, keepalives and load checks) goes through ``sleep`` (default
:func:`asyncio.sleep`); tests pass one that lets each turn of a loop through by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from contracts.cluster import INITIALIZING, KEEPALIVE_WHOAREYOU, ClusterClient

from .base import Transport
from .errors import RpcError, RpcUnavailable
from .logs import WorkerLog
from .settings import WorkerSettings

__all__ = ["ClusterWorker"]

LossHandler = Callable[[list[str]], Awaitable[None]]
RecoveryHandler = Callable[[], Awaitable[None]]


class ClusterWorker:
    """One worker's membership in the cluster."""

    def __init__(
        self,
        transport: Transport,
        *,
        purpose: str,
        worker_id: str,
        info: dict[str, Any],
        settings: WorkerSettings | None = None,
        load: Callable[[], float] = lambda: 0.0,
        on_loss: LossHandler | None = None,
        on_recovery: RecoveryHandler | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.transport = transport
        self.purpose = purpose
        self.worker_id = worker_id
        self.log = WorkerLog(worker_id=worker_id, purpose=purpose)
        self.info = info
        self.settings = settings or WorkerSettings()
        self._load = load
        self._on_loss = on_loss
        self._on_recovery = on_recovery
        self._sleep = sleep
        self.tasks: set[str] = set()
        self.manager_state: str | None = None
        self.recoveries = 0
        self._keepalive_task: asyncio.Task[None] | None = None
        self._load_task: asyncio.Task[None] | None = None
        self._last_load: float | None = None
        self._stopped = False
        self._cluster = ClusterClient(transport, self.settings.cluster_name)

    async def start(self) -> None:
        """Join the cluster (with retries) and start keepalives and load reports; idempotent.

        A worker that could not join, or was stopped, cannot be started again."""
        if self._stopped:
            raise RuntimeError(f"the cluster worker {self.worker_id} was stopped; make a new one")
        if self._keepalive_task is not None:
            return
        try:
            await self._join()
        except BaseException:
            self._stopped = True
            raise
        self._keepalive_task = asyncio.create_task(self._keepalive_loop(), name=f"keepalive:{self.worker_id}")
        self._load_task = asyncio.create_task(self._load_loop(), name=f"load:{self.worker_id}")

    async def stop(self, *, quit: bool = True) -> None:
        """Stop every loop; tell the manager this worker quits (best effort). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for task in (self._keepalive_task, self._load_task):
            if task is not None:
                task.cancel()
        loops = [task for task in (self._keepalive_task, self._load_task) if task is not None]
        if loops:
            # asyncio.wait, not ``await task`` in a try: that would swallow a cancellation of stop itself
            await asyncio.wait(loops)
        if quit:
            try:
                await self._cluster.quit(worker_id=self.worker_id, wait=False)
            except RpcError as exc:
                self.log.info("quit_not_delivered", error=str(exc))

    # -- tasks -----------------------------------------------------------------------------------

    async def add_task(self, task: str) -> None:
        """This worker now executes ``task`` (reported to the manager)."""
        self.tasks.add(task)
        await self._report(self._cluster.pick_up_tasks(worker_id=self.worker_id, tasks=[task], wait=False))

    async def remove_task(self, task: str) -> None:
        """``task`` ended here; the manager keeps it reserved for a while (linger)."""
        self.tasks.discard(task)
        await self._report(self._cluster.lay_down_task(worker_id=self.worker_id, task=task, wait=False))

    async def end_task(self, task: str) -> None:
        """``task`` ended here for good, or will not run here: the manager forgets it at once (no
        linger), e.g. a used login token, which a lingering reservation would make claimable again."""
        self.tasks.discard(task)
        await self._report(self._cluster.unschedule(worker_id=self.worker_id, task=task, wait=False))

    async def _report(self, sent: Coroutine[Any, Any, None]) -> None:
        """Send a report (a :class:`~contracts.cluster.ClusterClient` cast); a failure is only logged."""
        try:
            await sent
        except RpcError as exc:
            # The keepalive loop notices a lost manager; a rejoin re-reports every task.
            self.log.warning("report_not_delivered", method=getattr(sent, "__name__", "?"), error=str(exc))

    # -- membership ------------------------------------------------------------------------------

    async def _join(self) -> str:
        last: RpcError | None = None
        for attempt in range(max(1, self.settings.join_retries)):
            try:
                state = await self._cluster.join(purpose=self.purpose, worker_id=self.worker_id, info=self.info,
                                                 timeout=self.settings.keepalive_timeout * 2)
            except RpcError as exc:
                last = exc
                self.log.debug("join_attempt_failed", attempt=attempt + 1, error=str(exc))
                await self._sleep(self.settings.join_interval)
                continue
            self.manager_state = state
            self._last_load = None
            self.log.info("joined_cluster", manager_state=state, attempts=attempt + 1)
            return self.manager_state
        self.log.warning("join_failed", attempts=max(1, self.settings.join_retries), error=str(last))
        raise RpcUnavailable(f"{self.worker_id} could not join the cluster manager: {last}")

    async def _keepalive_loop(self) -> None:
        failures = 0
        while not self._stopped:  # as well as cancelled: a cancellation can be swallowed on the way
            await self._sleep(self.settings.keepalive_interval)
            try:
                answer = await self._cluster.keep_alive(worker_id=self.worker_id,
                                                        timeout=self.settings.keepalive_timeout)
            except RpcError as exc:
                if not self.transport.connected:
                    # This worker lost the broker, not the manager: the manager, cut off too, waits
                    # for it (a grace period after it reconnects), so rejoining would lose its tasks.
                    self.log.debug("keepalive_not_sent", error=str(exc))
                    continue
                failures += 1
                self.log.debug("keepalive_failed", failures=failures, error=str(exc))
                if failures > self.settings.keepalive_max_failures:
                    self.log.warning("cluster_manager_lost", failures=failures)
                    failures = 0
                    await self._recover()
                continue
            failures = 0
            if answer == KEEPALIVE_WHOAREYOU:
                self.log.warning("unknown_to_cluster_manager")
                await self._recover()

    async def _recover(self) -> None:
        try:
            state = await self._join()
        except RpcUnavailable:
            return  # join_failed is logged
        self.recoveries += 1
        if state == INITIALIZING:
            if self.tasks:
                try:
                    await self._cluster.pick_up_tasks(worker_id=self.worker_id, tasks=sorted(self.tasks))
                except RpcError as exc:
                    self.log.warning("tasks_not_reported", tasks=len(self.tasks), error=str(exc))
        else:
            lost = sorted(self.tasks)
            self.tasks.clear()
            if lost and self._on_loss is not None:
                await self._run_hook("on_loss", self._on_loss(lost))
        if self._on_recovery is not None:
            await self._run_hook("on_recovery", self._on_recovery())

    async def _run_hook(self, name: str, hook: Awaitable[None]) -> None:
        try:
            await hook
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("hook_failed", hook=name)

    async def _load_loop(self) -> None:
        checks = 0
        while not self._stopped:  # as well as cancelled: a cancellation can be swallowed on the way
            await self._sleep(self.settings.load_report_interval)
            try:
                load = float(self._load())
            except Exception:
                self.log.exception("load_not_measured")
                continue
            checks += 1
            if load == self._last_load and checks % 10:
                continue
            try:
                await self._cluster.report_load(worker_id=self.worker_id, load=load,
                                                timeout=self.settings.keepalive_timeout)
                self._last_load = load
            except RpcError as exc:
                self.log.debug("load_report_failed", error=str(exc))
