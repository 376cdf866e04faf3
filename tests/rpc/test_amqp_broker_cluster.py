"""The RabbitMQ transport given several broker nodes (``rpc.broker_url`` = ``a,b,c``): it connects to
the first that answers, and when its node goes it goes on at the next one, where calls made meanwhile
wait for it (``rpc.outage_wait``) and messages the broker refuses right after the loss (a quorum queue
electing its new leader) are published again rather than failed."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pytest

from rpc import RpcSettings, rpc_method
from rpc.amqp import AmqpTransport
from rpc.brokers import broker_urls, redacted
from switchboard.devbroker import RabbitNode
from switchboard.devbroker_cluster import RabbitCluster
from tests.support.processes import free_port
from tests.support.tcp_cut import CutProxy
from tests.support.waiting import wait_until

#: Longer than any of these tests may take: a call that ends does so because it was served.
LONG = 60.0


class Service:
    @rpc_method
    async def echo(self, value: int) -> int:
        return value


def test_the_broker_url_names_one_node_or_several_separated_by_commas() -> None:
    assert broker_urls("amqp://h1:5672/") == ["amqp://h1:5672/"]
    assert broker_urls(" amqp://u:p@h1/v, amqp://u:p@h2/v ,amqps://u:p@h3:5671/v") == [
        "amqp://u:p@h1/v", "amqp://u:p@h2/v", "amqps://u:p@h3:5671/v"]
    with pytest.raises(ValueError, match="not a broker address"):
        broker_urls("amqp://h1/,http://h2/")
    with pytest.raises(ValueError, match="different virtual hosts"):
        broker_urls("amqp://h1/a,amqp://h2/b")
    assert redacted("amqp://u:secret@h1/") == "amqp://u:******@h1/"


async def test_the_amqp_heartbeat_is_the_one_configured(rabbit: RabbitNode) -> None:
    """A frozen peer is noticed after ~2 heartbeats: aio-pika drops a ``heartbeat`` keyword, so it
    must reach the connection through each address (a cluster manager frozen by SIGSTOP was not
    replaced for 60 s when it did not)."""
    transport = AmqpTransport("beat", RpcSettings(broker_url=f"{rabbit.url},amqp://127.0.0.1:{free_port()}/",
                                                  heartbeat=3))
    await transport.start()
    try:
        assert transport._conn is not None
        assert transport._conn.url.query.get("heartbeat") == "3"
        underlying = transport._conn.transport
        assert underlying is not None and underlying.connection.heartbeat_timeout == 3
    finally:
        await transport.close()


async def test_a_node_that_refuses_is_skipped_at_start(rabbit: RabbitNode) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    settings = RpcSettings(broker_url=f"{dead},{rabbit.url}")
    server, client = AmqpTransport("skip-server", settings), AmqpTransport("skip-client", settings)
    try:
        await server.start()
        await client.start()
        await server.serve("skip-svc", Service())
        assert await client.call("skip-svc", "echo", {"value": 7}) == 7
    finally:
        await client.close()
        await server.close()


async def test_a_message_the_broker_refuses_is_published_again_until_it_takes_it(rabbit: RabbitNode) -> None:
    settings = RpcSettings(broker_url=rabbit.url, outage_wait=LONG)
    server, client = AmqpTransport("nack-server", settings), AmqpTransport("nack-client", settings)
    try:
        await server.start()
        await client.start()
        await server.serve("nack-svc", Service())
        # A queue that refuses every message (a broker-side policy): what a quorum queue does for a
        # while to a channel that first published to it right after its leader's node was lost.
        await asyncio.to_thread(rabbit.ctl_checked, "set_policy", "--apply-to", "queues", "nack-svc-full",
                                "^nack-svc$", '{"max-length": 0, "overflow": "reject-publish"}')
        first_channel = client._publish_ch
        try:
            call = asyncio.create_task(client.call("nack-svc", "echo", {"value": 5}, timeout=LONG))
            await wait_until(lambda: client.nacks >= 2, what="the message refused twice")
            assert not call.done()
        finally:
            await asyncio.to_thread(rabbit.ctl_checked, "clear_policy", "nack-svc-full")
        assert await call == 5
        assert client._publish_ch is not first_channel  # each refusal opened a new channel
    finally:
        await client.close()
        await server.close()


async def test_when_its_node_is_killed_the_transport_goes_on_at_the_next_and_calls_wait_for_it(
    rabbit_cluster: RabbitCluster,
) -> None:
    settings = RpcSettings(broker_url=rabbit_cluster.url, reconnect_interval=0.5, outage_wait=30)
    server, client = AmqpTransport("node-server", settings), AmqpTransport("node-client", settings)
    try:
        await server.start()
        await client.start()
        # A plain service, and a single-active one: a quorum queue, its leader on the first node.
        await server.serve("node-svc", Service())
        await server.serve("node-sac", Service(), single_active=True)
        assert await client.call("node-sac", "echo", {"value": 0}) == 0
        assert client._conn is not None and client._conn.address == redacted(rabbit_cluster.urls[0])

        rabbit_cluster.kill(0)
        # (A call published before the loss is noticed fails: it may have reached the broker.)
        await wait_until(lambda: not client.connected or client.reconnects, what="the loss noticed")
        # Made at once: they wait for the connection to the next node (and the queue's new leader).
        assert await client.call("node-svc", "echo", {"value": 1}, timeout=LONG) == 1
        for value in range(2, 12):
            assert await client.call("node-sac", "echo", {"value": value}, timeout=LONG) == value
        assert client._conn.address == redacted(rabbit_cluster.urls[1])
        assert client.reconnects == server.reconnects == 1
    finally:
        await client.close()
        await server.close()


async def test_a_queue_gone_with_its_broker_node_is_no_departure_of_its_server(rabbit_cluster: RabbitCluster) -> None:
    first, second = rabbit_cluster.urls[:2]
    watcher = AmqpTransport("departures-watcher", RpcSettings(broker_url=second))
    moving = AmqpTransport("moving-server", RpcSettings(broker_url=f"{first},{second}", reconnect_interval=0.5))
    leaving = AmqpTransport("leaving-server", RpcSettings(broker_url=second))
    departed: list[str] = []
    try:
        for transport in (watcher, moving, leaving):
            await transport.start()
        await moving.serve("moving-svc", Service())
        await leaving.serve("leaving-svc", Service())
        assert await watcher.watch_departures(departed.append)

        rabbit_cluster.kill(0)  # "moving-svc"'s queue goes with the node; its server moves to the next
        await wait_until(lambda: moving.reconnects == 1, what="the server on the next node")
        assert await watcher.call("moving-svc", "echo", {"value": 1}, timeout=LONG) == 1
        await leaving.close()  # a departure, after the node's loss: the marker that events arrived
        await wait_until(lambda: "leaving-svc" in departed, what="the departure of the server that left")
        assert "moving-svc" not in departed
    finally:
        for transport in (leaving, moving, watcher):
            await transport.close()


async def _hold_exclusively(url: str, queue: str) -> aio_pika.abc.AbstractConnection:
    """A connection holding ``queue`` exclusively, declared as soon as the broker lets it (once the
    queue of that name that was there has gone)."""
    holder = await aio_pika.connect(url)
    try:
        async def declared() -> bool:
            channel = await holder.channel()
            try:
                await channel.declare_queue(queue, exclusive=True)
            except aiormq.exceptions.ChannelLockedResource:
                return False
            return True

        for _ in range(200):
            if await declared():
                return holder
            await asyncio.sleep(0.05)
        raise AssertionError(f"{queue} never freed")
    except BaseException:
        await holder.close()
        raise


async def test_the_reply_queue_comes_back_under_a_new_name(rabbit: RabbitNode) -> None:
    """A lost connection's reply queue may still be there when the transport is back: in a cluster,
    a queue of the lost node stays until the cluster deletes it, and declaring it again is refused
    meanwhile (or consuming it gets nothing).  Here its name is taken, exclusively, by another
    connection while the transport's path to the broker is cut: once the path is back, its calls
    are answered (the reply queue came back under a new name), and it never waits for that name."""
    proxy = CutProxy(free_port(), rabbit.port)
    await proxy.start()
    settings = RpcSettings(broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.listen_port}/", reconnect_interval=0.2,
                           outage_wait=10)
    server = AmqpTransport("rename-server", RpcSettings(broker_url=rabbit.url))
    client = AmqpTransport("rename-client", settings)
    holder = None
    try:
        await server.start()
        await client.start()
        await server.serve("rename-svc", Service())
        assert await client.call("rename-svc", "echo", {"value": 0}) == 0
        lost_name = client._reply_queue_name
        assert proxy.cut() == 1
        holder = await _hold_exclusively(rabbit.url, lost_name)
        proxy.restore()
        assert await client.call("rename-svc", "echo", {"value": 1}, timeout=LONG) == 1
        assert client.reconnects == 1 and client._reply_queue_name != lost_name
    finally:
        if holder is not None:
            await holder.close()
        await client.close()
        await server.close()
        await proxy.stop()
