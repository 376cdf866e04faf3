"""Bounded retries of one delivery, on a fake clock: the attempts, the exponential backoff with its
jitter bound, and the last error once every attempt failed."""

from __future__ import annotations

import pytest

from alerts import Alert, AlertSettings, Fault
from alerts.retry import deliver
from alerts.sinks import DeliveryFailed


class _FlakySink:
    name = "flaky"
    where = "test"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def send(self, alert: Alert) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise DeliveryFailed(f"HTTP 500 (call {self.calls})")


class _Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


_ALERT = Alert(id="a1", group="g", count=1, severity="error", first_at=0.0, last_at=0.0,
               faults=[Fault(kind="worker_lost", summary="w lost")])


async def test_a_delivery_that_fails_twice_succeeds_on_the_third_attempt_after_growing_waits() -> None:
    sink, sleeps = _FlakySink(2), _Sleeps()
    failed: list[str] = []
    settings = AlertSettings(attempts=4, backoff_initial=1.0, backoff_max=30.0, backoff_jitter=0.5)
    await deliver(sink, _ALERT, settings, sleep=sleeps, on_failed_attempt=failed.append)
    assert sink.calls == 3
    assert failed == ["HTTP 500 (call 1)", "HTTP 500 (call 2)"]
    assert len(sleeps.waits) == 2
    assert 1.0 <= sleeps.waits[0] <= 1.5 and 2.0 <= sleeps.waits[1] <= 2.5


async def test_every_attempt_failing_raises_the_last_error_after_exactly_attempts_tries() -> None:
    sink, sleeps = _FlakySink(100), _Sleeps()
    settings = AlertSettings(attempts=5, backoff_initial=1.0, backoff_max=3.0, backoff_jitter=0.0)
    with pytest.raises(DeliveryFailed, match="call 5"):
        await deliver(sink, _ALERT, settings, sleep=sleeps)
    assert sink.calls == 5
    assert sleeps.waits == [1.0, 2.0, 3.0, 3.0]  # doubling, capped at backoff_max
