"""How a source tells the alert service of a fault or hands it a dead letter: a cast to the
service ``<cluster>.alerts``, sent in the background (the source never waits for it), at most
``max_in_flight`` at once (beyond that, and when the cast fails, the fault is logged and dropped)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import msgspec

from background import Background
from contracts.alerts import AlertsClient
from rpc import RpcError, Transport

from .logs import log
from .deadletters import DeadLetter
from .faults import Fault, alerts_service_name, encode_fault

__all__ = ["FaultReporter"]



class FaultReporter:
    def __init__(self, transport: Transport, cluster: str, *, max_in_flight: int = 100) -> None:
        self.transport = transport
        self.service = alerts_service_name(cluster)
        self._client = AlertsClient(transport, self.service)
        self.max_in_flight = max_in_flight
        self._sending = Background(log)
        #: Faults and dead letters that could not be handed over.
        self.dropped = 0

    def report(self, fault: Fault) -> None:
        """Send ``fault`` (its ``source`` filled in) to the alert service, in the background."""
        if not fault.source:
            fault = msgspec.structs.replace(fault, source=self.transport.node_id)
        self._send(self._client.cast_fault(fault=encode_fault(fault)), fault.summary)

    def dead_letter(self, letter: DeadLetter) -> None:
        """Hand ``letter`` (something given up after its retries) to the alert service's store."""
        if not letter.source:
            letter = msgspec.structs.replace(letter, source=self.transport.node_id)
        self._send(self._client.cast_dead_letter(letter=msgspec.to_builtins(letter)), letter.description)

    def handler_failed(self, service: str, method: str, error: BaseException) -> None:
        """An RPC handler raised an unexpected exception (:attr:`rpc.Transport.on_failed`)."""
        if service == self.service:
            return  # the alert service's own failures are logged only: no loop
        self.report(Fault(kind="handler_failed", severity="error", subject=f"{service}.{method}",
                          summary=f"{service}.{method} failed: {type(error).__name__}",
                          details={"error": type(error).__name__}))

    def _send(self, cast: Coroutine[Any, Any, None], what: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or len(self._sending) >= self.max_in_flight:
            cast.close()
            self.dropped += 1
            log.warning("fault_not_reported", reason="too many in flight" if loop else "no event loop", fault=what)
            return
        self._sending.spawn(self._cast(cast, what), f"report:{what[:40]}")

    async def _cast(self, cast: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await cast
        except RpcError as exc:
            self.dropped += 1
            log.warning("fault_not_reported", reason=exc.code, fault=what)

    async def flush(self) -> None:
        """Wait for the casts in flight (before the transport closes)."""
        await self._sending.wait()
