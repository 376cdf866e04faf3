"""Bounded retries of one alert delivery: ``attempts`` tries, exponential backoff with jitter
between them (``tenacity``); the sleep is injected so that tests run on a fake clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from .logs import log
from .grouping import Alert
from .settings import AlertSettings
from .sinks import DeliveryFailed, Sink

__all__ = ["deliver", "Sleep"]


Sleep = Callable[[float], Awaitable[None]]


async def deliver(sink: Sink, alert: Alert, settings: AlertSettings, *, sleep: Sleep,
                  on_failed_attempt: Callable[[str], None] | None = None) -> None:
    """Send ``alert`` to ``sink``, retrying a failed attempt up to ``settings.attempts`` tries in all.

    :raises DeliveryFailed: the last attempt's failure, once every attempt failed.
    """

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("alert_attempt_failed", alert=alert.id, sink=sink.where, attempt=state.attempt_number,
                 attempts=settings.attempts, error=str(error), retry_in=wait)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(settings.attempts),
        wait=wait_exponential_jitter(initial=settings.backoff_initial, max=settings.backoff_max,
                                     jitter=settings.backoff_jitter),
        retry=retry_if_exception_type(DeliveryFailed),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            try:
                await sink.send(alert)
            except DeliveryFailed as exc:
                if on_failed_attempt is not None:
                    on_failed_attempt(str(exc))
                raise
