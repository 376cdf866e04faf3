"""The alert service of a cluster: receives faults, groups them, delivers the alerts to the sinks
with bounded retries, keeps what still fails as a dead letter, and answers the operators'
``dead_letters_*`` admin methods.

It serves ``<cluster>.alerts`` as a single-active service: every cluster-manager process runs one
and the broker gives the service to one of them at a time (the embedded server runs the only one).
It is the one writer of its grouper and its dead-letter store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import msgspec

from background import Background
from credentials import AdminKeys
from rpc import RpcError, ServiceHandle, Transport, rpc_method
from rpc.errors import BAD_ARGUMENTS, ServiceError

from .logs import log
from .deadletters import DeadLetter, DeadLetterStore, StoreUnavailable
from .faults import Fault, alerts_service_name, decode_fault
from .grouping import Alert, Grouper
from .retry import Sleep, deliver
from .settings import AlertSettings
from .sinks import DeliveryFailed, Sink, build_sink
from .tallies import AlertTallies

__all__ = ["AlertService", "DEAD_LETTER_METHODS"]


#: The admin methods of the alert service (each needs ``admin_key``).
DEAD_LETTER_METHODS = frozenset({"dead_letters_list", "dead_letters_show", "dead_letters_retry", "dead_letters_purge"})


class AlertService:
    """:param leads: whether this process speaks for the cluster (the active cluster manager):
        only then does it report its own broker link going and coming back.
    :param clock: monotonic seconds (the grouping windows); ``sleep``: the backoff between attempts.
    :param on_alert: told of every alert as it goes out to the sinks (the status page's timeline)."""

    def __init__(
        self,
        transport: Transport,
        settings: AlertSettings,
        *,
        cluster: str,
        store: DeadLetterStore,
        admin_keys: AdminKeys,
        leads: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.name = alerts_service_name(cluster)
        self.store = store
        self.tallies = AlertTallies()
        self._keys = admin_keys
        self._leads = leads
        self._sleep = sleep
        self._on_alert = on_alert
        self._grouper = Grouper(settings.group_window, max_groups=settings.max_groups,
                                max_listed=settings.max_faults_listed, clock=clock)
        self._clock = clock
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self.sinks: dict[str, Sink] = {}
        self._deliveries = Background(log)
        self._flusher: asyncio.Task[None] | None = None
        self._handle: ServiceHandle | None = None
        self._broker_lost_at: float | None = None
        self._stopped = False

    async def start(self) -> None:
        """Open the sinks and the store, then serve; a failed start undoes what it did and raises."""
        self._session = aiohttp.ClientSession()
        self.sinks = {s.name: build_sink(s, self._session) for s in self.settings.sinks}
        try:
            await self.store.start()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="alerts:flush")
            self._handle = await self.transport.serve(self.name, self, single_active=True)
        except BaseException:
            await self.stop()
            raise
        self.transport.watch_link(self._link_changed)
        log.info("alert_sinks", sinks=", ".join(f"{n} ({s.where})" for n, s in self.sinks.items()) or "nowhere")

    async def stop(self) -> None:
        """Stop serving; groups still open are logged, deliveries in progress cancelled.  Idempotent."""
        self._stopped = True
        if self._handle is not None:
            await self._handle.stop()
            self._handle = None
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        for alert in self._grouper.drain():
            log.warning("alert_not_sent", reason="stopping", alert=alert.title, faults=alert.count)
        await self._deliveries.stop()
        await self.store.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- faults in -------------------------------------------------------------------------------

    def raise_fault(self, fault: Fault) -> None:
        """A fault decided in this process: into its group (after :meth:`stop`: logged only)."""
        if self._stopped:
            log.warning("fault_after_stop", fault=fault.summary)
            return
        self.tallies.faults[fault.kind] += 1
        for alert in self._grouper.add(fault):
            self._dispatch(alert)
        self._wake.set()

    @rpc_method
    async def fault(self, fault: Any) -> None:
        try:
            decoded = decode_fault(fault)
        except msgspec.ValidationError as exc:
            raise ServiceError(BAD_ARGUMENTS, f"not a fault: {exc}") from None
        self.raise_fault(decoded)

    @rpc_method
    async def dead_letter(self, letter: Any) -> None:
        """A component gave a message up after its retries: keep it, and tell the operators."""
        try:
            decoded = msgspec.convert(letter, DeadLetter)
        except msgspec.ValidationError as exc:
            raise ServiceError(BAD_ARGUMENTS, f"not a dead letter: {exc}") from None
        await self._keep(decoded)

    def _link_changed(self, up: bool) -> None:
        if not up:
            if self._broker_lost_at is None and self._leads():
                self._broker_lost_at = time.time()
                self.raise_fault(Fault(kind="broker_lost", severity="error", subject="broker", group="broker",
                                       summary="the broker connection was lost", source=self.transport.node_id))
            return
        lost_at, self._broker_lost_at = self._broker_lost_at, None
        if lost_at is not None:
            down = time.time() - lost_at
            self.raise_fault(Fault(kind="broker_back", severity="info", subject="broker", group="broker",
                                   summary=f"the broker connection is back after {down:.1f} s",
                                   source=self.transport.node_id, details={"down_s": round(down, 3)}))

    # -- alerts out ------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            deadline = self._grouper.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - self._clock())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            for alert in self._grouper.due():
                self._dispatch(alert)

    def _dispatch(self, alert: Alert) -> None:
        if self._on_alert is not None:
            try:
                self._on_alert(alert)
            except Exception:
                log.exception("on_alert_failed", alert=alert.id)
        for sink in self.sinks.values():
            if len(self._deliveries) >= self.settings.max_deliveries:
                self._spawn(self._dead_alert(sink, alert, "too many deliveries in progress", 0))
                continue
            self._spawn(self._deliver(sink, alert))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._deliveries.spawn(work, "alerts:deliver")

    async def _deliver(self, sink: Sink, alert: Alert) -> None:
        def failed(_error: str) -> None:
            self.tallies.failed[sink.name] += 1

        try:
            await deliver(sink, alert, self.settings, sleep=self._sleep, on_failed_attempt=failed)
        except DeliveryFailed as exc:
            await self._dead_alert(sink, alert, str(exc), self.settings.attempts)
            return
        self.tallies.sent[sink.name] += 1

    async def _dead_alert(self, sink: Sink, alert: Alert, reason: str, attempts: int) -> None:
        self.tallies.dead_lettered[sink.name] += 1
        log.error("alert_given_up", alert=alert.id, sink=sink.where, attempts=attempts, reason=reason)
        letter = DeadLetter(origin="alert", description=f"alert: {alert.title}", reason=reason, attempts=attempts,
                            source=self.transport.node_id, sink=sink.name, alert=alert)
        # A dead letter is a fault of its own, unless the alert told of nothing but dead letters.
        await self._keep(letter, tell=any(f.kind != "dead_letter" for f in alert.faults))

    async def _keep(self, letter: DeadLetter, *, tell: bool = True) -> None:
        letter = self._bounded(letter)
        try:
            await self.store.put(letter)
        except StoreUnavailable as exc:
            log.error("dead_letter_lost", letter=letter.id, error=str(exc), description=letter.description)
            return
        self.tallies.stored[letter.origin] += 1
        if tell:
            self.raise_fault(Fault(kind="dead_letter", severity="error", subject=letter.origin,
                                   group=letter.group or "dead_letter", source=self.transport.node_id,
                                   summary=f"dead letter {letter.id}: {letter.description} ({letter.reason})",
                                   details={"id": letter.id, "origin": letter.origin}))

    def _bounded(self, letter: DeadLetter) -> DeadLetter:
        if len(msgspec.json.encode(letter)) <= self.settings.dead_letters.max_bytes:
            return letter
        cut = msgspec.structs.replace(letter, args=None, alert=None,
                                      reason=f"{letter.reason} (payload over {self.settings.dead_letters.max_bytes} "
                                             "bytes: not kept)")
        return msgspec.structs.replace(cut, description=cut.description[:500])

    # -- operators -------------------------------------------------------------------------------

    def _authorize(self, admin_key: object) -> None:
        if not self._keys.accepts(admin_key):
            log.warning("admin_refused", reason="missing_key" if not admin_key else "wrong_key")
            raise ServiceError("unauthorized", "admin calls need a valid admin key (keys.admin_keys)")

    async def _store(self, work: Any) -> Any:
        try:
            return await work
        except StoreUnavailable as exc:
            raise ServiceError("unavailable", str(exc)) from None

    async def _letter(self, letter_id: object) -> DeadLetter:
        if not isinstance(letter_id, str) or not letter_id:
            raise ServiceError(BAD_ARGUMENTS, "letter_id must be a dead letter's id")
        letter = await self._store(self.store.get(letter_id))
        if letter is None:
            raise ServiceError("unknown_dead_letter", f"no dead letter {letter_id!r}")
        assert isinstance(letter, DeadLetter)
        return letter

    @rpc_method
    async def dead_letters_list(self, admin_key: str) -> list[dict[str, Any]]:
        self._authorize(admin_key)
        return [letter.summary() for letter in await self._store(self.store.list())]

    @rpc_method
    async def dead_letters_show(self, letter_id: str, admin_key: str) -> dict[str, Any]:
        self._authorize(admin_key)
        return msgspec.to_builtins(await self._letter(letter_id))  # type: ignore[no-any-return]

    @rpc_method
    async def dead_letters_retry(self, letter_id: str, admin_key: str) -> dict[str, Any]:
        """Deliver it once more (an alert to its sink, a message to its target); gone on success."""
        self._authorize(admin_key)
        letter = await self._letter(letter_id)
        try:
            if letter.origin == "alert":
                sink = self.sinks.get(letter.sink)
                if sink is None or letter.alert is None:
                    raise ServiceError("retry_failed", f"sink {letter.sink!r} is not configured" if sink is None
                                       else "the alert was too big to keep")
                await sink.send(letter.alert)
                self.tallies.sent[sink.name] += 1
            else:
                if letter.args is None:
                    raise ServiceError("retry_failed", "the message was too big to keep")
                await self.transport.call(letter.target, letter.method, letter.args)
        except DeliveryFailed as exc:
            self.tallies.failed[letter.sink] += 1
            raise ServiceError("retry_failed", f"still failing: {exc}") from None
        except ServiceError:
            raise
        except RpcError as exc:
            raise ServiceError("retry_failed", f"still failing: {exc.code}") from None
        await self._store(self.store.remove(letter.id))
        log.info("dead_letter_delivered", letter=letter.id)
        return {"id": letter.id, "delivered": True}

    @rpc_method
    async def dead_letters_purge(self, admin_key: str) -> dict[str, Any]:
        self._authorize(admin_key)
        count = await self._store(self.store.purge())
        log.warning("dead_letters_purged", count=count)
        return {"purged": count}
