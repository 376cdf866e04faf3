"""Token and ticket races on real processes (issue: portal death and broker faults).

A cluster manager, a token API, one controller and two portals serving the same ISP on RabbitMQ.

- **Token race**: each join token is presented at once by three sockets, on both portals (what a
  client retrying too eagerly, or a token leaked to a second device, does): exactly one logs in,
  the others are refused, and the room holds that participant once.
- **Ticket race**: each participant's socket is lost, and its reconnection ticket is presented at
  once by two sockets, one per portal: exactly one relogs in; the participant keeps its place
  (nobody sees it leave or join again), and what is sent to it afterwards reaches the winner's
  socket once and the loser's never.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from switchboard.client import Client, ClientSettings
from switchboard.client.tokens import mint_token
from tests.support.chaos import Chaos
from tests.support.processes import ProcessCluster
from tests.support.sockets import RecordingClient
from tests.support.waiting import wait_until

ROOM = "races"
PREFERENCE = {"isp": "isp-a"}
SCENARIO = "token and ticket races"


async def _token(cluster: ProcessCluster, user: str) -> str:
    return await mint_token(cluster.api_url, ROOM, user, "presenter", preference=PREFERENCE,
                            headers=cluster.service_headers)


async def _try_login(url: str, token: str, sockets: list[RecordingClient]) -> tuple[RecordingClient, Any, Any]:
    socket = await RecordingClient(url).connect()
    sockets.append(socket)
    status, result = await socket.login(token)
    return socket, status, result


async def _try_relogin(url: str, ticket: str, sockets: list[RecordingClient]) -> tuple[RecordingClient, Any, Any]:
    socket = await RecordingClient(url).connect()
    sockets.append(socket)
    status, result = await socket.call("relogin", ticket)
    return socket, status, result


async def test_a_token_or_a_ticket_presented_at_once_on_both_portals_wins_exactly_once(
    process_cluster: Callable[..., ProcessCluster], chaos: Chaos,
) -> None:
    cluster = process_cluster(portals=2, controllers=1, portal_isps=["isp-a", "isp-a"])
    await cluster.start()
    urls = [cluster.portal_url(1), cluster.portal_url(2)]
    sockets: list[RecordingClient] = []
    watcher: Client | None = None
    try:
        watcher = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=ROOM, user="watcher",
                                    role="presenter", preference=PREFERENCE, settings=ClientSettings())
        users = [f"user-{n}" for n in range(chaos.scale(6, 20))]
        tokens = [await _token(cluster, user) for user in users]

        # The token race: three sockets per token, spread over both portals, all at once.
        attempts = await asyncio.gather(*(
            _try_login(urls[(n + k) % 2], token, sockets) for n, token in enumerate(tokens) for k in range(3)))
        winners: dict[str, tuple[RecordingClient, dict[str, Any]]] = {}
        token_failures = 0
        for n, token in enumerate(tokens):
            mine = attempts[3 * n:3 * n + 3]
            ok = [(socket, result) for socket, status, result in mine if status == "ok"]
            refused = [result for _, status, result in mine if status != "ok"]
            token_failures += int(len(ok) != 1)
            assert len(ok) == 1, (users[n], mine)
            assert len(refused) == 2 and all(isinstance(r, str) and r for r in refused), refused
            winners[users[n]] = ok[0]
        joined: list[str] = []

        def joins() -> int:
            assert watcher is not None
            joined.extend(e.data["data"]["user"] for e in watcher.drain_events("participant")
                          if e.data["action"] == "join")
            return len(joined)

        await wait_until(lambda: joins() >= len(users), timeout=20, what="every winner in the room")
        await asyncio.sleep(0.3)  # a second join of anyone would show by now
        joins()
        assert sorted(joined) == sorted(users)  # each once

        # The ticket race: every winner's socket lost, its ticket presented at once at both portals.
        for socket, _ in winners.values():
            await socket.close()
        await asyncio.sleep(0.3)  # the portals have seen the sockets go: the sessions are held
        watcher.drain_events()
        races = await asyncio.gather(*(
            asyncio.gather(_try_relogin(urls[0], result["reconnectionTicket"], sockets),
                           _try_relogin(urls[1], result["reconnectionTicket"], sockets))
            for _, result in winners.values()))
        ticket_failures = 0
        relogged: dict[str, RecordingClient] = {}
        losers: list[RecordingClient] = []
        for user, pair in zip(winners, races):
            won = [socket for socket, status, ticket in pair if status == "ok" and isinstance(ticket, str)]
            ticket_failures += int(len(won) != 1)
            assert len(won) == 1, (user, pair)
            relogged[user] = won[0]
            losers += [socket for socket, status, _ in pair if status != "ok"]

        # Everyone kept their place: what the watcher sends reaches each winner once, no loser.
        for user in users:
            await watcher.send_text(winners[user][1]["id"], f"to {user}")
        for user, socket in relogged.items():
            await wait_until(lambda s=socket, u=user: f"to {u}" in s.texts(), timeout=20,  # type: ignore[misc]
                             what=f"the text to {user}")
        await watcher.send_text("all", "end")
        for socket in relogged.values():
            await wait_until(lambda s=socket: "end" in s.texts(), timeout=20, what="the end")  # type: ignore[misc]
        duplicated = sum(len(s.texts()) - len(set(s.texts())) for s in relogged.values())
        assert duplicated == 0
        assert all(loser.texts() == [] for loser in losers)
        assert watcher.drain_events("participant") == []  # nobody left, nobody joined again
        chaos.record(SCENARIO, "bare OWT", failed_logins=token_failures + ticket_failures, duplicated=duplicated,
                     notes=f"{len(tokens)} tokens × 3 sockets at once on 2 portals: one login each; "
                           f"{len(winners)} tickets × 2 relogins at once: one each, nobody left or joined again")
    except BaseException:
        print(cluster.logs_tail(4000))
        raise
    finally:
        if watcher is not None:
            with contextlib.suppress(Exception):
                await watcher.close()
        for socket in sockets:
            await socket.close()
