"""A crowd of idle logged-in participants held by load-generator processes (``memory``, ``capacity``).

Each worker process holds its share of the crowd and obeys the parent's commands:

- ``{"op": "join", "count": k}`` — log in more of its clients until ``k`` are in (``--concurrency``
  logins at once); reports ``{"joined", "errors", "error_count", "seconds"}``;
- ``{"op": "send", "at": wall, "tag": s}`` — every client marked as a sender sends ``text`` to
  ``all`` in its room with message ``s`` at wall-clock time ``at``; reports the acks' outcome;
- ``{"op": "collect"}`` — reports, per room, how many clients got message ``s`` and when
  (seconds after ``at``);
- ``{"op": "stop"}`` — disconnects everyone and ends.

Clients answer Engine.IO pings, so they stay logged in however long the measurement takes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.loadgen import Control
from bench.participants import Participant, connector, join
from bench.sioclient import SioClient

__all__ = ["crowd_worker", "layout"]


def layout(clients: int, room_size: int, prefix: str) -> list[tuple[str, str, bool]]:
    """``(user, room, is_sender)`` for ``clients`` clients in rooms of ``room_size``; the first of each room sends."""
    out = []
    for i in range(clients):
        room, seat = divmod(i, room_size)
        out.append((f"{prefix}u{i}", f"{prefix}room{room}", seat == 0))
    return out


async def crowd_worker(config: dict[str, Any], control: Control) -> dict[str, Any]:
    clients: list[list[Any]] = config["clients"]
    received: dict[str, float] = {}  # user → wall-clock receipt time of the current tag
    state = {"tag": ""}
    joined: list[Participant] = []
    errors: list[str] = []
    error_count = 0

    def handler(user: str) -> Any:
        def on_text(data: Any) -> None:
            if isinstance(data, dict) and data.get("message") == state["tag"] and user not in received:
                received[user] = time.time()
        return on_text

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector(), timeout=timeout) as session:
        command = await control.report({"ready": len(clients)})
        while command["op"] != "stop":
            op = command["op"]
            if op == "join":
                target = min(command["count"], len(clients))
                started = time.perf_counter()
                sem = asyncio.Semaphore(config.get("concurrency", 20))

                async def one(user: str, room: str) -> None:
                    nonlocal error_count
                    async with sem:
                        for attempt in range(3):
                            try:
                                if config.get("bare"):  # the baseline: a bare Socket.IO connection
                                    client = SioClient()
                                    await client.connect(session, config["portal"], timeout=60)
                                    p = Participant(client, client.sid, "", user, room, config["portal"])
                                else:
                                    p = await join(session, config["api"], room, user,
                                                   handlers={"text": handler(user)}, timeout=60)
                            except Exception as exc:  # noqa: BLE001 - counted and reported
                                error_count += 1
                                if len(errors) < 20:
                                    errors.append(f"{user}: {exc!r}"[:300])
                                await asyncio.sleep(0.5 * (attempt + 1))
                                continue
                            joined.append(p)
                            return

                done = {p.user for p in joined}
                await asyncio.gather(*(one(u, r) for u, r, _ in clients[:target] if u not in done))
                command = await control.report({"joined": len(joined), "errors": errors[:20], "error_count": error_count,
                                                "seconds": time.perf_counter() - started})
            elif op == "send":
                state["tag"] = command["tag"]
                received.clear()
                # ``joined`` is in the order the logins finished, not the layout's: look senders up by user.
                sending = {user for user, _, sends in clients if sends}
                senders = [p for p in joined if p.user in sending]
                await asyncio.sleep(max(0.0, command["at"] - time.time()))
                acks = await asyncio.gather(
                    *(p.client.call("text", {"to": "all", "message": command["tag"]}, timeout=30) for p in senders),
                    return_exceptions=True)
                bad = [repr(a)[:200] for a in acks if isinstance(a, BaseException) or a[0] != "ok"]
                command = await control.report({"senders": len(senders), "bad_acks": bad[:10], "bad_count": len(bad)})
            elif op == "collect":
                at = command["at"]
                got = [received[p.user] - at for p in joined if p.user in received]
                closed = sum(1 for p in joined if p.client.closed is None or p.client.closed.done())
                lost = [f"{p.user}@{p.room}" for p in joined if p.user not in received][:10]
                command = await control.report({"latencies": got, "expected": len(joined),
                                                "missing": len(joined) - len(got), "disconnected": closed,
                                                "missing_users": lost})
            else:
                raise ValueError(f"unknown command {command!r}")
        await asyncio.gather(*(p.client.disconnect() for p in joined), return_exceptions=True)
    return {}
