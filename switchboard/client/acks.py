"""Batched ``ack {seq}`` of the switchboard extension: one ack for many events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .logs import ClientLog

__all__ = ["AckBatcher"]

_log = ClientLog()


class AckBatcher:
    """Acknowledges the highest seq seen, ``interval`` seconds after the first unacked event or at once
    when ``batch`` events are unacked.

    ``send(seq)`` emits the ack; it may fail (no live socket): the seq stays pending and goes out with
    the next flush, and the relogin's ``lastSeq`` tells the server anyway.  ``sleep`` waits for the
    timer (tests pass one they release by hand).
    """

    def __init__(
        self,
        send: Callable[[int], Awaitable[None]],
        *,
        interval: float,
        batch: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._send = send
        self._sleep = sleep
        self._interval = interval
        self._batch = batch
        self._highest: int | None = None
        self._acked: int | None = None
        self._unacked = 0
        self._timer: asyncio.Task[None] | None = None

    @property
    def acked(self) -> int | None:
        """The highest seq acknowledged to the server so far."""
        return self._acked

    def note(self, seq: int) -> None:
        """Record that the event ``seq`` was applied."""
        if self._highest is None or seq > self._highest:
            self._highest = seq
        self._unacked += 1
        if self._timer is None:
            delay = 0.0 if self._unacked >= self._batch else self._interval
            self._timer = asyncio.get_running_loop().create_task(self._flush_after(delay))
        elif self._unacked >= self._batch:
            self._timer.cancel()
            self._timer = asyncio.get_running_loop().create_task(self._flush_after(0.0))

    async def flush(self) -> None:
        """Send the pending ack now (no-op when nothing is pending)."""
        seq = self._highest
        if seq is None or seq == self._acked:
            return
        self._unacked = 0
        try:
            await self._send(seq)
        except Exception as exc:  # no live socket: the next flush or the relogin covers it
            _log.debug("ack_not_sent", seq=seq, error=repr(exc))
            return
        if self._acked is None or seq > self._acked:
            self._acked = seq

    async def close(self) -> None:
        """Stop the timer without sending."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _flush_after(self, delay: float) -> None:
        await self._sleep(delay)
        if self._timer is asyncio.current_task():
            self._timer = None
        await self.flush()
