"""Faults raised in-process: an RPC handler's unexpected exception (wired by ``build_role`` on every
transport of an embedded server) and the broker link of the process that speaks for the cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from alerts import AlertService, AlertSettings, LocalDeadLetters, SinkSettings
from credentials import AdminKeys
from rpc import LocalBroker, RpcRemoteError, rpc_method
from tests.conftest import MakeEmbedded
from tests.support.waiting import wait_until
from tests.support.webhook import WebhookReceiver


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


class _Faulty:
    @rpc_method
    async def explode(self) -> None:
        raise KeyError("a bug")


def _faults(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [f for body in receiver.accepted for f in body["alert"]["faults"]]


async def test_an_unexpected_exception_in_a_handler_is_one_alert_however_often(
    make_embedded: MakeEmbedded, receiver: WebhookReceiver,
) -> None:
    server = await make_embedded(alerts={"sinks": [{"name": "hook", "kind": "json", "url": receiver.url}],
                                         "group_window": 0.3})
    await server.controller.transport.serve("faulty", _Faulty())
    caller = server.broker.transport("caller")
    for _ in range(5):
        with pytest.raises(RpcRemoteError, match="faulty.explode failed"):
            await caller.call("faulty", "explode", {})
    [body] = await wait_until(lambda: receiver.accepted, what="the alert")
    alert = body["alert"]
    assert (alert["count"], alert["group"]) == (5, "handler_failed:faulty.explode")
    assert alert["faults"][0]["summary"] == "faulty.explode failed: KeyError"
    assert alert["faults"][0]["source"] == server.controller.transport.node_id


@pytest.mark.parametrize("leads", [True, False])
async def test_the_broker_lost_and_back_is_one_alert_from_the_process_that_leads(
    receiver: WebhookReceiver, leads: bool,
) -> None:
    broker = LocalBroker()
    transport = broker.transport("manager-1")
    settings = AlertSettings(sinks=[SinkSettings(name="hook", kind="json", url=receiver.url)], group_window=0.2)
    service = AlertService(transport, settings, cluster="c", store=LocalDeadLetters(10), admin_keys=AdminKeys([]),
                           leads=lambda: leads)
    await service.start()
    try:
        transport._link_changed(False)
        transport._link_changed(True)
        transport._link_changed(True)  # told twice: still one "back"
        if leads:
            await wait_until(lambda: receiver.accepted, what="the alert")
            assert [f["kind"] for f in _faults(receiver)] == ["broker_lost", "broker_back"]
            assert receiver.accepted[0]["alert"]["count"] == 2
        else:
            assert service.tallies.faults == {}
    finally:
        await service.stop()
        await transport.close()
