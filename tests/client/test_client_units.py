"""The client's pure parts: credentials, refresh schedule, ack batching, the event hub."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from switchboard.client import ClientError, Event, TicketInfo, decode_credential, portal_url, ticket_info
from switchboard.client.acks import AckBatcher
from switchboard.client.events import EventHub
from switchboard.client.tokens import refresh_delay
from tests.support.waiting import wait_until


def _b64(fields: dict[str, object]) -> str:
    return base64.b64encode(json.dumps(fields).encode()).decode()


def test_portal_url_follows_the_sdk_rules() -> None:
    assert portal_url(_b64({"host": "127.0.0.1:8080", "secure": False})) == "http://127.0.0.1:8080"
    assert portal_url(_b64({"host": "portal.example:443", "secure": True})) == "https://portal.example:443"
    assert portal_url(_b64({"host": "http://10.0.0.1:9", "secure": True})) == "http://10.0.0.1:9"
    with pytest.raises(ClientError, match="Invalid host"):
        portal_url(_b64({"secure": True}))


def test_credentials_must_be_standard_base64_json_objects() -> None:
    assert decode_credential(_b64({"a": 1})) == {"a": 1}
    for bad in ("not base64!", base64.b64encode(b"[1]").decode(), base64.b64encode(b"{").decode()):
        with pytest.raises(ClientError):
            decode_credential(bad)


def test_ticket_info_reads_the_window() -> None:
    info = ticket_info(_b64({"participantId": "p", "notBefore": 1000, "notAfter": 601_000}))
    assert info == TicketInfo("p", 1000, 601_000)
    assert info.lifetime == 600
    with pytest.raises(ClientError, match="notAfter"):
        ticket_info(_b64({"participantId": "p", "notAfter": "soon"}))


def test_a_long_ticket_is_refreshed_a_margin_before_it_expires() -> None:
    info = TicketInfo("p", 0, 600_000)
    assert refresh_delay(info, margin=60, min_delay=1, now=100) == pytest.approx(440)


def test_a_short_ticket_is_refreshed_at_half_life_and_never_in_a_storm() -> None:
    info = TicketInfo("p", 0, 30_000)
    assert refresh_delay(info, margin=60, min_delay=1, now=0) == pytest.approx(15)
    assert refresh_delay(info, margin=60, min_delay=1, now=20) == pytest.approx(1)
    assert refresh_delay(TicketInfo("p", 0, 5_000), margin=60, min_delay=1, now=4.9) == pytest.approx(1)


def test_an_expired_ticket_is_not_refreshed() -> None:
    assert refresh_delay(TicketInfo("p", 0, 10_000), margin=60, min_delay=1, now=10) is None


class ManualTimers:
    """A ``sleep`` whose waits end when the test says so: ``pending()`` are the delays asked for."""

    def __init__(self) -> None:
        self.waits: list[tuple[float, asyncio.Future[None]]] = []

    async def __call__(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waits.append((delay, future))
        await future

    def pending(self) -> list[float]:
        return [delay for delay, future in self.waits if not future.done()]

    def fire(self) -> None:
        for _, future in self.waits:
            if not future.done():
                future.set_result(None)


async def test_acks_are_batched_by_time_and_by_count() -> None:
    sent: list[int] = []

    async def send(seq: int) -> None:
        sent.append(seq)

    timers = ManualTimers()
    acks = AckBatcher(send, interval=0.05, batch=5, sleep=timers)
    for seq in (1, 2, 3):
        acks.note(seq)
    # one timer of one interval for the three events, and nothing sent before it ends
    await wait_until(lambda: timers.pending() == [0.05])
    assert sent == []
    timers.fire()
    await wait_until(lambda: sent == [3])
    for seq in range(4, 9):
        acks.note(seq)
    # the fifth unacked event replaces the interval timer (cancelled before it even started) by an
    # immediate one
    await wait_until(lambda: timers.pending() == [0.0])
    assert [delay for delay, _ in timers.waits] == [0.05, 0.0]
    assert sent == [3]
    timers.fire()
    await wait_until(lambda: sent == [3, 8])
    assert acks.acked == 8
    await acks.close()


async def test_an_ack_that_cannot_be_sent_stays_pending() -> None:
    attempts: list[int] = []

    async def send(seq: int) -> None:
        attempts.append(seq)
        if len(attempts) == 1:
            raise ConnectionError("no socket")

    timers = ManualTimers()
    acks = AckBatcher(send, interval=0.01, batch=100, sleep=timers)
    acks.note(1)
    await wait_until(lambda: timers.pending() == [0.01])
    timers.fire()
    await wait_until(lambda: attempts == [1])
    assert acks.acked is None
    await acks.flush()
    assert attempts == [1, 1] and acks.acked == 1


async def test_the_hub_keeps_events_until_taken_and_runs_handlers_in_order() -> None:
    hub = EventHub(backlog=100)
    seen: list[str] = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.01)
        seen.append(f"slow {event.data}")

    hub.add_handler("text", slow)
    hub.add_handler("*", lambda event: seen.append(f"any {event.data}"))
    hub.publish(Event("text", 1))
    hub.publish(Event("participant", 2))
    hub.publish(Event("text", 3))
    assert (await hub.next_event("text", 1)).data == 1
    assert (await hub.next_event("text", 1)).data == 3
    assert [e.data for e in hub.drain(None)] == [2]
    waiter = asyncio.ensure_future(hub.next_event("progress", 1))
    await asyncio.sleep(0)
    hub.publish(Event("progress", 4))
    assert (await waiter).data == 4
    with pytest.raises(TimeoutError):
        await hub.next_event("text", 0.01)
    await hub.close()
    assert seen == ["slow 1", "any 1", "any 2", "slow 3", "any 3", "any 4"]
