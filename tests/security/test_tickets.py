"""Stolen and replayed reconnection tickets, through the real entry points: one live socket per
participant, cluster-wide, and a used ticket that only the connection which lost its answer may retry.

Hostile clients speak Socket.IO to the embedded server (one portal) and to a cluster of real role
processes on RabbitMQ (two portals, one controller).  Each attack checks the refusal *and* that nothing
changed: the owner's socket stays live and is the only one that can act, the others hear no leave/join.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from rpc import RpcRemoteError
from switchboard.client.tokens import decode_credential, mint_token
from tests.conftest import MakeEmbedded
from tests.support.processes import ProcessCluster
from tests.support.sockets import OWT_AGENT, RecordingClient
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

REVOKED = ("error", "Ticket was revoked")
REVOKED_STRUCTURED = ("error", {"code": "ticket_revoked", "message": "Ticket was revoked"})
AGENT = OWT_AGENT
Sock = RecordingClient


class RawSocket:
    """A hostile client on a bare Engine.IO websocket: it ignores the Socket.IO disconnect packet and
    keeps the transport open, so only the server closing the transport itself cuts it off."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.session = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse
        self.closed = asyncio.Event()
        self.disconnect_packets = 0
        self.received: list[tuple[str, Any]] = []
        self._ids = itertools.count(1)
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> RawSocket:
        self.ws = await self.session.ws_connect(self.url)
        self._reader = asyncio.create_task(self._read())
        await self.ws.send_str("40")
        await asyncio.wait_for(self._connected.wait(), 5)
        return self

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                text: str = msg.data
                if text == "2":
                    await self.ws.send_str("3")  # pong: stay alive as long as the server lets us
                elif text.startswith("40"):
                    self._connected.set()
                elif text.startswith("41"):
                    self.disconnect_packets += 1  # ignored on purpose
                elif text.startswith("43"):
                    ack_id, _, body = text[2:].partition("[")
                    future = self._acks.pop(int(ack_id), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads("[" + body))
                elif text.startswith("42"):
                    event, *args = json.loads(text[2:])
                    self.received.append((event, args[0] if args else None))
        finally:
            self.closed.set()
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("transport closed"))

    async def send(self, event: str, payload: Any) -> asyncio.Future[list[Any]]:
        """Emit with an ack id; the future gets the ack's arguments (or fails when the transport closes)."""
        ack_id = next(self._ids)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        try:
            await self.ws.send_str(f"42{ack_id}" + json.dumps([event, payload]))
        except ConnectionError as exc:  # the server already closed the transport
            self._acks.pop(ack_id, None)
            future.set_exception(ConnectionError(f"not sent: {exc}"))
        return future

    async def call(self, event: str, payload: Any) -> list[Any]:
        return await asyncio.wait_for(await self.send(event, payload), 10)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.ws.close()
        await self.session.close()


class Sockets:
    """Makes sockets and closes them all at the end of a test."""

    def __init__(self) -> None:
        self.made: list[Sock | RawSocket] = []

    async def sock(self, url: str) -> Sock:
        sock = Sock(url)
        self.made.append(sock)
        return await sock.connect()

    async def raw(self, url: str) -> RawSocket:
        raw = RawSocket(url)
        self.made.append(raw)
        return await raw.connect()

    async def close(self) -> None:
        for sock in self.made:
            with contextlib.suppress(Exception):
                await sock.close()


@pytest_asyncio.fixture
async def sockets() -> AsyncIterator[Sockets]:
    made = Sockets()
    yield made
    await made.close()


async def _token(stack: Any, room: str, user: str, isp: str | None = None) -> str:
    return await mint_token(stack.api_url, room, user, "presenter", headers=stack.service_headers,
                            preference={"isp": isp} if isp else None)


def _ticket_id(ticket: str) -> Any:
    return decode_credential(ticket, "ticket")["ticketId"]


async def _owner_still_in_charge(owner: Sock, observer: Sock, owner_id: str, message: str) -> None:
    """The owner's socket is live and acts for the participant; the observer heard no leave or join."""
    assert owner.sio.connected and not owner.disconnected.is_set()
    assert await owner.call("text", {"to": "all", "message": message}) == "ok"
    await wait_until(lambda: message in observer.texts(), what=f"{message!r} reached the others")
    assert ("text", {"from": owner_id, "to": "all", "message": message}) in observer.received
    await wait_until(lambda: message in owner.texts(), what=f"{message!r} reached the owner")
    assert observer.participant_events() == [], "the others saw a leave or a join"


# -- embedded server (one portal) ---------------------------------------------------------------------


async def test_a_just_used_ticket_is_refused_while_the_owner_is_connected(
    make_embedded: MakeEmbedded, sockets: Sockets
) -> None:
    stack = await make_embedded()
    url = stack.portal_url
    first = await sockets.sock(url)
    alice = await first.login_ok(await _token(stack, "used", "alice"))
    bob = await sockets.sock(url)
    await bob.login_ok(await _token(stack, "used", "bob"))
    # The owner relogs in (OWT style, bare ticket) from a new socket: the first socket is taken over.
    owner = await sockets.sock(url)
    status, fresh = await owner.call("relogin", alice["reconnectionTicket"])
    assert status == "ok" and isinstance(fresh, str)
    await wait_until(first.disconnected.is_set, what="the first socket closed")
    # Whoever else has the used ticket gets nothing, whatever form the relogin takes.
    for payload in (
        alice["reconnectionTicket"],
        {"ticket": alice["reconnectionTicket"], "lastSeq": None},
        {"ticket": alice["reconnectionTicket"], "lastSeq": None, "retryKey": "thief-chosen-key-0123"},
    ):
        thief = await sockets.sock(url)
        answer = await thief.call("relogin", payload)
        assert answer == (REVOKED if isinstance(payload, str) else REVOKED_STRUCTURED), answer
        await wait_until(thief.disconnected.is_set, what="the refused socket closed")
    await _owner_still_in_charge(owner, bob, alice["id"], "still mine")
    assert stack.controller.participant(alice["id"]).epoch == 1


async def test_a_keyed_relogin_whose_answer_was_lost_can_be_retried_only_with_its_key(
    make_embedded: MakeEmbedded, sockets: Sockets
) -> None:
    stack = await make_embedded()
    url = stack.portal_url
    first = await sockets.sock(url)
    alice = await first.login_ok(await _token(stack, "keyed", "alice"), extension=True)
    bob = await sockets.sock(url)
    await bob.login_ok(await _token(stack, "keyed", "bob"))
    await first.lose_network()
    used, key = alice["reconnectionTicket"], "the-client-secret-for-this-relogin"
    lost = await sockets.sock(url)
    status, body = await lost.call("relogin", {"ticket": used, "lastSeq": 0, "retryKey": key})
    assert status == "ok"
    await lost.lose_network()  # the answer never reached the client: all it has is the used ticket
    await wait_until(lambda: not stack.controller.participant(alice["id"]).connected, what="held")
    for payload in (used, {"ticket": used, "lastSeq": 0}, {"ticket": used, "lastSeq": 0, "retryKey": "x" * 16}):
        thief = await sockets.sock(url)
        answer = await thief.call("relogin", payload)
        assert answer == (REVOKED if isinstance(payload, str) else REVOKED_STRUCTURED), answer
    assert not stack.controller.participant(alice["id"]).connected  # still held: nothing changed
    owner = await sockets.sock(url)
    status, retried = await owner.call("relogin", {"ticket": used, "lastSeq": 0, "retryKey": key})
    assert status == "ok", retried
    assert _ticket_id(retried["ticket"]) == _ticket_id(body["ticket"]), "the retry repeats the lost answer's ticket"
    assert (await owner.call("refreshReconnectionTicket"))[0] == "ok"
    await _owner_still_in_charge(owner, bob, alice["id"], "back")


async def test_a_relogin_with_the_current_ticket_cuts_off_a_socket_that_ignores_the_disconnect(
    make_embedded: MakeEmbedded, sockets: Sockets
) -> None:
    stack = await make_embedded()
    url = stack.portal_url
    old = await sockets.raw(url)
    status, alice = await old.call("login", {"token": await _token(stack, "current", "alice"), "userAgent": AGENT,
                                             "protocol": "1.2"})
    assert status == "ok", alice
    bob = await sockets.sock(url)
    await bob.login_ok(await _token(stack, "current", "bob"))
    new = await sockets.sock(url)
    status, _ = await new.call("relogin", alice["reconnectionTicket"])
    assert status == "ok"
    stale = await old.send("text", {"to": "all", "message": "from the old socket"})
    await asyncio.wait_for(old.closed.wait(), 5)  # the server closed the transport itself
    assert old.disconnect_packets == 1
    assert ("drop", None) in old.received  # told, not just cut off
    with contextlib.suppress(ConnectionError):
        assert (await stale)[0] == "error"
    await _owner_still_in_charge(new, bob, alice["id"], "only the new socket")
    assert "from the old socket" not in bob.texts()


# -- two portal processes on RabbitMQ -------------------------------------------------------------------


@pytest.mark.amqp
@pytest.mark.slow
async def test_tickets_across_two_portals(process_cluster: Callable[..., ProcessCluster], sockets: Sockets,
                                          broker_url: str) -> None:
    cluster = process_cluster(portals=2, controllers=1)
    await cluster.start()
    factory = TransportFactory("amqp", broker_url)
    try:
        rpc = await factory.make()
        one, two = cluster.portal_url(1), cluster.portal_url(2)
        [controller] = [w["id"] for w in await cluster.admin("get_workers") if w["purpose"] == "conference"]

        async def portals(room: str) -> dict[str, tuple[str, str]]:
            members = await rpc.call(controller, "get_participants", {"room": room, "admin_key": cluster.admin_key})
            return {m["id"]: (m["portal"], m["state"]) for m in members}

        # 1. The owner relogs in at portal 1 (bare ticket); the used ticket is replayed at portal 2.
        first = await sockets.sock(one)
        alice = await first.login_ok(await _token(cluster, "x1", "alice", "isp-1"))
        bob = await sockets.sock(two)
        await bob.login_ok(await _token(cluster, "x1", "bob", "isp-2"))
        owner = await sockets.sock(one)
        status, current = await owner.call("relogin", alice["reconnectionTicket"])
        assert status == "ok"
        await wait_until(first.disconnected.is_set, what="taken over at portal 1")
        before = await portals("x1")
        for payload in (alice["reconnectionTicket"], {"ticket": alice["reconnectionTicket"], "lastSeq": None},
                        {"ticket": alice["reconnectionTicket"], "lastSeq": None, "retryKey": "k" * 40}):
            thief = await sockets.sock(two)
            answer = await thief.call("relogin", payload)
            assert answer == (REVOKED if isinstance(payload, str) else REVOKED_STRUCTURED), answer
        assert await portals("x1") == before
        await _owner_still_in_charge(owner, bob, alice["id"], "x1 still mine")

        # 2. The current ticket at portal 2 while the old socket at portal 1 is live (and ignores the
        #    disconnect): accepted, and the old socket is cut off; exactly one socket can act.
        old = await sockets.raw(one)
        status, carol = await old.call("login", {"token": await _token(cluster, "x2", "carol", "isp-1"),
                                                 "userAgent": AGENT, "protocol": "1.2"})
        assert status == "ok", carol
        dave = await sockets.sock(two)
        await dave.login_ok(await _token(cluster, "x2", "dave", "isp-2"))
        portal_one = (await portals("x2"))[carol["id"]][0]
        new = await sockets.sock(two)
        status, _ = await new.call("relogin", carol["reconnectionTicket"])
        assert status == "ok"
        stale = await old.send("text", {"to": "all", "message": "x2 from the old socket"})
        await asyncio.wait_for(old.closed.wait(), 5)
        with contextlib.suppress(ConnectionError):
            ack = await stale
            assert ack[0] == "error" and ack[1] in ("Participant is connected elsewhere", "Illegal request"), ack
        await _owner_still_in_charge(new, dave, carol["id"], "x2 only the new socket")
        assert "x2 from the old socket" not in dave.texts()

        # 3. The controller refuses what a stale portal relays or acknowledges (the displace may be lost).
        assert (await portals("x2"))[carol["id"]][0] != portal_one
        with pytest.raises(RpcRemoteError) as refused:
            await rpc.call(controller, "text", {"participant": carol["id"], "to": "all", "message": "stale",
                                                "portal": portal_one})
        assert refused.value.code == "not_current_portal"
        await rpc.cast(controller, "ack_many", {"acks": {carol["id"]: 10**6}, "portal": portal_one})
        members = await rpc.call(controller, "get_participants", {"room": "x2", "admin_key": cluster.admin_key})
        assert [m["acked"] for m in members if m["id"] == carol["id"]] != [10**6]
        assert "stale" not in dave.texts()

        # 4. A keyed relogin whose answer was lost, with its socket still open at portal 1: a wrong key
        #    at portal 2 is refused; the right key is accepted there and closes the socket at portal 1.
        eve_first = await sockets.sock(one)
        eve = await eve_first.login_ok(await _token(cluster, "x4", "eve", "isp-1"), extension=True)
        frank = await sockets.sock(two)
        await frank.login_ok(await _token(cluster, "x4", "frank", "isp-2"))
        used, key = eve["reconnectionTicket"], "eve-relogin-secret-0123456789"
        half_open = await sockets.sock(one)
        status, lost = await half_open.call("relogin", {"ticket": used, "lastSeq": 0, "retryKey": key})
        assert status == "ok"  # ...but the client never saw it
        wrong = await sockets.sock(two)
        assert await wrong.call("relogin", {"ticket": used, "lastSeq": 0, "retryKey": "w" * 29}) == REVOKED_STRUCTURED
        assert not half_open.disconnected.is_set()
        retry = await sockets.sock(two)
        status, again = await retry.call("relogin", {"ticket": used, "lastSeq": 0, "retryKey": key})
        assert status == "ok" and _ticket_id(again["ticket"]) == _ticket_id(lost["ticket"])
        await wait_until(half_open.disconnected.is_set, what="the socket at portal 1 closed")
        await _owner_still_in_charge(retry, frank, eve["id"], "x4 back")
        assert (await portals("x4"))[eve["id"]][1] == "connected"
    except BaseException:
        print(cluster.logs_tail())
        raise
    finally:
        await factory.close()
