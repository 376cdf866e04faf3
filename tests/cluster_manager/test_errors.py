"""Bad input gets a clear, coded error and changes nothing; unknown workers are named."""

from __future__ import annotations

from typing import Any

import pytest

from cluster_manager import ClusterManager, ClusterManagerSettings
from rpc import LocalBroker, RpcRemoteError

from .conftest import Cluster, MakeCluster

BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("join", {"purpose": "portal", "worker_id": 7, "info": {}}, "worker_id"),
    ("join", {"purpose": "", "worker_id": "w", "info": {}}, "purpose"),
    ("join", {"purpose": "portal", "worker_id": "w", "info": ["not", "a", "dict"]}, "info"),
    ("join", {"purpose": "portal", "worker_id": "w", "info": {"capacity": {"isps": "isp-a"}}}, "capacity.isps"),
    ("join", {"purpose": "portal", "worker_id": "w", "info": {"port": "eighty"}}, "port"),
    ("join", {"purpose": "portal", "worker_id": "w", "info": {"max_load": -1}}, "max_load"),
    ("join", {"purpose": "portal", "worker_id": "w"}, "info"),
    ("keep_alive", {"worker_id": None}, "worker_id"),
    ("report_load", {"worker_id": "portal-1", "load": "high"}, "load"),
    ("report_load", {"worker_id": "portal-1", "load": -0.5}, "load"),
    ("report_state", {"worker_id": "portal-1", "state": 7}, "state"),
    ("pick_up_tasks", {"worker_id": "portal-1", "tasks": "token-1"}, "tasks"),
    ("pick_up_tasks", {"worker_id": "portal-1", "tasks": ["ok", 3]}, "tasks"),
    ("schedule", {"purpose": "portal", "task": "t", "reserve_time": -5}, "reserve_time"),
    ("schedule", {"purpose": "portal", "task": "t", "reserve_time": "60"}, "reserve_time"),
    ("schedule", {"purpose": "portal", "task": "t", "preference": ["isp"]}, "preference"),
    ("schedule", {"purpose": "portal", "task": 12}, "task"),
    ("schedule", {"purpose": "portal", "task": "t", "reserveTime": 60}, "reserveTime"),
    ("claim", {"purpose": "portal", "task": "t"}, "worker_id"),
    ("get_workers", {"purpose": 3}, "purpose"),
]


@pytest.mark.parametrize(("method", "args", "mentions"), BAD_CALLS)
async def test_bad_arguments_are_refused_and_change_nothing(
    make_cluster: MakeCluster, method: str, args: dict[str, Any], mentions: str
) -> None:
    cluster = await make_cluster()
    await cluster.join("portal-1")
    before = await _state(cluster)

    with pytest.raises(RpcRemoteError) as err:
        await cluster.call(method, **args)

    assert err.value.code == "bad_arguments"
    assert mentions in err.value.message
    assert await _state(cluster) == before


async def _state(cluster: Cluster) -> Any:
    workers = await cluster.call("get_workers")
    for worker in workers:
        worker.pop("joined_for")
    return workers, await cluster.call("get_tasks", worker_id="portal-1")


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("report_load", {"load": 0.5}),
        ("report_state", {"state": "available"}),
        ("pick_up_tasks", {"tasks": ["t"]}),
        ("lay_down_task", {"task": "t"}),
        ("unschedule", {"task": "t"}),
        ("get_worker", {}),
        ("get_tasks", {}),
        ("drain", {}),
        ("undrain", {}),
        ("quit", {}),
    ],
)
async def test_calls_about_an_unknown_worker_say_so(make_cluster: MakeCluster, method: str, args: dict[str, Any]) -> None:
    cluster = await make_cluster()
    with pytest.raises(RpcRemoteError) as err:
        await cluster.call(method, worker_id="ghost", **args)
    assert err.value.code == "unknown_worker"
    assert "'ghost'" in err.value.message


async def test_a_claim_by_a_worker_of_another_purpose_is_refused(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("conf-1", purpose="conference")
    await cluster.join("portal-1")
    await cluster.call("schedule", purpose="portal", task="token-1")
    with pytest.raises(RpcRemoteError) as err:
        await cluster.call("claim", purpose="portal", task="token-1", worker_id="conf-1")
    assert err.value.code == "unknown_worker"


def test_an_unknown_strategy_in_the_settings_is_refused_at_construction() -> None:
    transport = LocalBroker().transport("cm")
    with pytest.raises(ValueError, match="round-robin"):
        ClusterManager(transport, ClusterManagerSettings(strategies={"portal": "fastest"}))


async def test_start_and_stop_are_idempotent() -> None:
    broker = LocalBroker(roundtrip=True)
    manager = ClusterManager(broker.transport("cm"), ClusterManagerSettings(check_alive_interval=0.01))
    await manager.start()
    await manager.start()
    assert await broker.transport("caller").call("cluster", "keep_alive", {"worker_id": "x"}) == "whoareyou"
    sweeper = manager._reaper._sweeper
    await manager.stop()
    await manager.stop()
    assert sweeper is not None and sweeper.done()
    with pytest.raises(RuntimeError):
        await manager.start()
