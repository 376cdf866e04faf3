"""A server's reply whose channel is being restored (its connection moved to another broker node
while it handled the request) is published again once the channel is back, within ``rpc.reply_wait`` (whatever ``outage_wait``),
instead of being dropped (its caller would otherwise wait out its whole timeout: seen in
``test_amqp_broker_cluster.py``'s node-kill test as ``reply_lost … RobustChannel closed``).  The
channel here is a stand-in that refuses a given number of publishes: what is tested is the
transport's handling of the refusal."""

from __future__ import annotations

from typing import Any, cast

import aio_pika
import pytest

from rpc import RpcSettings
from rpc.amqp import AmqpTransport
from rpc.messages import Reply, decode_reply


class _Exchange:
    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.published: list[tuple[bytes, str]] = []

    async def publish(self, message: aio_pika.Message, routing_key: str, mandatory: bool) -> None:
        if self.refusals:
            self.refusals -= 1
            raise RuntimeError("<RobustChannel> closed")  # what aio-pika raises while it reopens it
        self.published.append((message.body, routing_key))


class _Channel:
    def __init__(self, refusals: int) -> None:
        self.default_exchange = _Exchange(refusals)


class _Request:
    correlation_id = "c1"
    reply_to = "reply.caller"


def _transport(refusals: int, reply_wait: float) -> tuple[AmqpTransport, _Exchange]:
    # A caller that fails fast through an outage (outage_wait 0) still gets its answer: the server's
    # reply has a bound of its own.
    transport = AmqpTransport("replier", RpcSettings(broker_url="amqp://guest:guest@127.0.0.1:1/",
                                                     outage_wait=0, reply_wait=reply_wait))
    channel = _Channel(refusals)
    transport._reply_ch = cast(Any, channel)
    transport._restored.set()
    return transport, channel.default_exchange


@pytest.mark.parametrize("refusals", [1, 3])
async def test_a_reply_refused_while_its_channel_is_restored_is_published_again(refusals: int) -> None:
    transport, exchange = _transport(refusals, reply_wait=5.0)
    await transport._send_reply(cast(Any, _Request()), Reply(result=42))
    [(body, routing_key)] = exchange.published
    assert (decode_reply(body).result, routing_key) == (42, "reply.caller")
    assert transport.replies_resent == refusals


async def test_a_reply_still_refused_after_the_reply_wait_is_given_up() -> None:
    transport, exchange = _transport(refusals=1_000, reply_wait=0.2)
    await transport._send_reply(cast(Any, _Request()), Reply(result=42))
    assert exchange.published == [] and 1 <= transport.replies_resent <= 5
