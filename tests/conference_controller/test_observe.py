"""What a controller's ``/readyz`` and ``/metrics`` say (:mod:`conference_controller.observe`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from conference_controller import Controller
from conference_controller.observe import controller_readiness, controller_registry
from rpc.settings import WorkerSettings
from tests.support.transports import TransportFactory

from .conftest import Env, controller_settings


def _value(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name)
    assert value is not None, name
    return value


async def test_ready_only_between_start_and_stop_while_connected(local: TransportFactory, make_env: Any) -> None:
    env: Env = await make_env(local)
    unstarted = Controller(await local.make("unstarted"), controller_settings(), WorkerSettings())
    assert (controller_readiness(unstarted).ready, controller_readiness(unstarted).reason) == (
        False, "not started, or stopped")
    ready = controller_readiness(env.controller)
    assert ready.ready and ready.as_json() == {"ready": True, "status": "ready", "worker_id": env.controller.worker_id}
    second = await env.start_controller("second")
    await second.transport.close()
    assert controller_readiness(second).reason == "broker connection lost"
    await second.stop()
    assert controller_readiness(second).reason == "not started, or stopped"


async def test_gauges_count_rooms_participants_and_unacknowledged_notifications(env: Env) -> None:
    registry = controller_registry(env.controller)
    assert _value(registry, "switchboard_controller_rooms") == 0
    assert _value(registry, "switchboard_controller_outbox_oldest_unacked_seconds") == 0
    await env.join("p1")
    env.clock.advance(5)
    await env.join("p2")  # p1 is told p2 joined: a notification it has not acknowledged
    env.clock.advance(2)
    assert _value(registry, "switchboard_controller_rooms") == 1
    assert _value(registry, "switchboard_controller_participants") == 2
    assert _value(registry, "switchboard_controller_outbox_unacked") == 1
    assert _value(registry, "switchboard_controller_outbox_oldest_unacked_seconds") == 2
    await env.call("ack", participant="p1", seq=1)
    assert _value(registry, "switchboard_controller_outbox_unacked") == 0
    assert _value(registry, "switchboard_controller_outbox_oldest_unacked_seconds") == 0
    assert _value(registry, "switchboard_controller_broker_connected") == 1
    assert _value(registry, "process_open_fds") > 0
