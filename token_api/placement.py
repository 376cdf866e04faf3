"""Reserving a portal for a token at the cluster manager, within a bounded time budget.

``schedule('portal', code, preference, token_lifetime)`` is retried with a small back-off while
the failure may pass (``not_ready``, ``no_worker_available``, an unreachable or slow manager);
when the budget is spent the caller gets :class:`PortalUnavailable` (HTTP 503 with
``Retry-After``) instead of a request held open for a minute as in OWT.
``no_matching_worker`` (no portal serves the requested ISP) is not retried: it does not pass by
waiting a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from contracts.cluster import ClusterClient, Scheduled
from rpc import RpcError, RpcRemoteError, RpcTimeout, RpcUnavailable, Transport
from rpc.addresses import public_address

from .errors import CloudError, PortalUnavailable
from .logs import log
from .metrics import Metrics
from .settings import TokenApiSettings

__all__ = ["Placement", "PortalScheduler", "public_address", "RETRYABLE_CODES", "PORTAL_PURPOSE"]


PORTAL_PURPOSE = "portal"
#: Cluster manager error codes worth retrying within the budget.
RETRYABLE_CODES = frozenset({"not_ready", "no_worker_available"})
_NO_MATCHING_WORKER = "no_matching_worker"
_FIRST_DELAY = 0.05
_MAX_DELAY = 0.5


@dataclass(frozen=True, slots=True)
class Placement:
    """The portal a token was reserved on, and how clients reach it."""

    worker_id: str
    host: str
    secure: bool


class PortalScheduler:
    """Reserves portals at the cluster manager ``cluster_name``.

    ``clock`` (seconds, monotonic) and ``sleep`` pace the retries within ``schedule_budget``; tests
    pass a fake clock and a ``sleep`` that advances it."""

    def __init__(
        self,
        transport: Transport,
        settings: TokenApiSettings,
        metrics: Metrics,
        *,
        cluster_name: str = "cluster",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._manager = ClusterClient(transport, cluster_name)
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep

    async def reserve(self, code: str, preference: dict[str, Any] | None, reserve_time: float) -> Placement:
        """Reserve task ``code`` on a portal for ``reserve_time`` seconds."""
        started = self._clock()
        try:
            result = await self._schedule(code, preference, reserve_time, started)
        except msgspec.ValidationError as exc:
            self._metrics.scheduling_failures.labels(reason="bad_schedule_result").inc()
            log.error("schedule_result_unusable", error=str(exc))
            raise CloudError("Failed to get portal", reason="scheduling_error") from None
        self._metrics.schedule_seconds.observe(self._clock() - started)
        worker_id, info = result.id, result.info
        try:
            host, secure = public_address(info)
        except ValueError as exc:
            self._metrics.scheduling_failures.labels(reason="portal_without_address").inc()
            log.error("portal_without_address", worker_id=worker_id, error=str(exc))
            await self.release(worker_id, code)
            raise CloudError(
                "Failed to get portal: the chosen portal declares no public address", reason="portal_without_address"
            ) from None
        return Placement(worker_id=worker_id, host=host, secure=secure)

    async def release(self, worker_id: str, code: str) -> None:
        """Give back the reservation of ``code`` on ``worker_id`` (best effort: it expires anyway)."""
        try:
            await self._manager.unschedule(worker_id=worker_id, task=code, purpose=PORTAL_PURPOSE, wait=False)
        except RpcError as exc:
            log.info("unschedule_failed", worker_id=worker_id, error=exc.code)

    async def _schedule(
        self, code: str, preference: dict[str, Any] | None, reserve_time: float, started: float
    ) -> Scheduled:
        deadline = started + self._settings.schedule_budget
        delay = _FIRST_DELAY
        attempts = 0
        while True:
            attempts += 1
            remaining = deadline - self._clock()
            timeout = max(0.05, min(self._settings.schedule_call_timeout, remaining))
            try:
                return await self._manager.schedule(purpose=PORTAL_PURPOSE, task=code, preference=preference,
                                                    reserve_time=reserve_time, timeout=timeout)
            except RpcRemoteError as exc:
                if exc.code == _NO_MATCHING_WORKER:
                    raise self._unavailable(exc, attempts, "No portal serves the requested ISP") from None
                if exc.code not in RETRYABLE_CODES:
                    self._metrics.scheduling_failures.labels(reason=exc.code).inc()
                    log.error("schedule_failed", code=exc.code, message=exc.message)
                    raise CloudError("Failed to get portal", reason="scheduling_error") from None
                last: RpcError = exc
            except (RpcUnavailable, RpcTimeout) as exc:
                last = exc
            if self._clock() + delay >= deadline:
                raise self._unavailable(last, attempts, "Failed to get portal") from None
            await self._sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    def _unavailable(self, exc: RpcError, attempts: int, message: str) -> PortalUnavailable:
        self._metrics.scheduling_failures.labels(reason=exc.code).inc()
        log.warning("no_portal", reason=exc.code, attempts=attempts, detail=exc.message)
        return PortalUnavailable(
            f"{message} ({exc.code}); retry later", retry_after=self._settings.retry_after, reason=_reason(exc.code)
        )


def _reason(code: str) -> str:
    if code == _NO_MATCHING_WORKER:
        return "no_matching_portal"
    if code in (RpcUnavailable.code, RpcTimeout.code):
        return "cluster_unreachable"
    if code == "not_ready":
        return "cluster_not_ready"
    return "no_portal_available"
