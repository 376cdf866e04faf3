"""Numbered texts a client sends to its room all along a fault, for counting what arrived."""

from __future__ import annotations

import asyncio

from switchboard.client import Client, ClientError

__all__ = ["send_numbered"]


async def send_numbered(
    sender: Client, prefix: str, stop: asyncio.Event, acked: list[str], unsure: set[str],
    errors: list[str] | None = None, *, pause: float = 0.05, after_refusal: float = 0.2,
) -> None:
    """``<prefix>-0``, ``<prefix>-1``, … to everyone in the room, one at a time, until ``stop``.

    A text the server acknowledged is appended to ``acked`` (so only those are expected anywhere);
    one it refused goes to ``unsure`` (it may have been taken before its answer was lost, never
    twice) and its error to ``errors``, and the next is sent under a new number."""
    n = 0
    while not stop.is_set():
        text = f"{prefix}-{n}"
        n += 1
        try:
            await sender.send_text("all", text)
        except ClientError as exc:
            unsure.add(text)
            if errors is not None:
                errors.append(f"{text}: {exc}")
            await asyncio.sleep(after_refusal)
            continue
        acked.append(text)
        await asyncio.sleep(pause)
