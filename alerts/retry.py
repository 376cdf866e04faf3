"""Bounded retries of one delivery: ``attempts`` tries, exponential backoff with jitter between
them (``tenacity``); the sleep is injected so that tests run on a fake clock.  Alerts use
:func:`deliver`; anything else that POSTs with the same policy (webhooks) uses :func:`retry_send`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from .logs import log
from .grouping import Alert
from .sinks import DeliveryFailed, Sink

__all__ = ["deliver", "retry_send", "Backoff", "Sleep"]


Sleep = Callable[[float], Awaitable[None]]


class Backoff(Protocol):
    """The retry policy's settings (:class:`~alerts.settings.AlertSettings` has them)."""

    @property
    def attempts(self) -> int: ...
    @property
    def backoff_initial(self) -> float: ...
    @property
    def backoff_max(self) -> float: ...
    @property
    def backoff_jitter(self) -> float: ...


async def retry_send(send: Callable[[], Awaitable[None]], settings: Backoff, *, what: str, where: str, sleep: Sleep,
                     on_failed_attempt: Callable[[str], None] | None = None) -> None:
    """Call ``send`` until it does not raise :class:`DeliveryFailed`, ``settings.attempts`` tries in all.

    :raises DeliveryFailed: the last attempt's failure, once every attempt failed.
    """

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("delivery_attempt_failed", what=what, to=where, attempt=state.attempt_number,
                 attempts=settings.attempts, error=str(error), retry_in=wait)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(settings.attempts),
        wait=wait_exponential_jitter(multiplier=settings.backoff_initial, max=settings.backoff_max,
                                     jitter=settings.backoff_jitter),
        retry=retry_if_exception_type(DeliveryFailed),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            try:
                await send()
            except DeliveryFailed as exc:
                if on_failed_attempt is not None:
                    on_failed_attempt(str(exc))
                raise


async def deliver(sink: Sink, alert: Alert, settings: Backoff, *, sleep: Sleep,
                  on_failed_attempt: Callable[[str], None] | None = None) -> None:
    """Send ``alert`` to ``sink``, retrying a failed attempt up to ``settings.attempts`` tries in all.

    :raises DeliveryFailed: the last attempt's failure, once every attempt failed.
    """
    await retry_send(lambda: sink.send(alert), settings, what=f"alert {alert.id}", where=sink.where, sleep=sleep,
                     on_failed_attempt=on_failed_attempt)
