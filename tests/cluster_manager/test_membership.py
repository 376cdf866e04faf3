"""Join, keepalive, quit, liveness removal and the ``exit.quit`` fault event, on both transports."""

from __future__ import annotations

import asyncio

import pytest

from rpc import RpcRemoteError
from tests.support.waiting import wait_until

from .conftest import Cluster, MakeCluster


async def test_a_joined_worker_keeps_alive_and_an_unknown_one_is_asked_who_it_is(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    assert await cluster.join("portal-1", hostname="h1", port=8080) == "in-service"
    assert await cluster.call("keep_alive", worker_id="portal-1") == "ok"
    assert await cluster.call("keep_alive", worker_id="stranger") == "whoareyou"
    worker = await cluster.call("get_worker", worker_id="portal-1")
    assert worker["id"] == "portal-1"
    assert worker["purpose"] == "portal"
    assert worker["info"] == {"hostname": "h1", "port": 8080}
    assert worker["schedulable"] is True


async def test_quit_removes_the_worker_repeals_its_tasks_and_publishes_exit_quit(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    events = await cluster.watch_exits()
    await cluster.join("conf-1", purpose="conference")
    await cluster.call("schedule", purpose="conference", task="room-1", reserve_time=30.0)

    await cluster.call("quit", worker_id="conf-1")

    await wait_until(lambda: events, what="exit.quit")
    assert events == [("exit.quit", {"purpose": "conference", "id": "conf-1", "type": "worker", "reason": "quit"})]
    assert await cluster.call("keep_alive", worker_id="conf-1") == "whoareyou"
    assert await cluster.call("get_scheduled", purpose="conference", task="room-1") is None
    with pytest.raises(RpcRemoteError) as err:
        await cluster.call("get_worker", worker_id="conf-1")
    assert err.value.code == "unknown_worker"


async def test_a_worker_that_misses_too_many_sweeps_is_removed_and_reported(make_cluster: MakeCluster) -> None:
    # ~0.6 s without a keepalive removes a worker: loose enough for a loaded machine over AMQP.
    cluster = await make_cluster(check_alive_interval=0.1, check_alive_count=5)
    events = await cluster.watch_exits()
    await cluster.join("silent", purpose="webrtc")
    await cluster.join("chatty", purpose="webrtc")
    await cluster.call("schedule", purpose="webrtc", task="session-1", preference={}, reserve_time=30.0)
    await cluster.call("pick_up_tasks", worker_id="silent", tasks=["session-2"])

    async def keep_alive() -> None:
        # A live worker: it keeps alive far more often than every 5 sweeps (the sweeps run on the
        # same event loop, so a stalled loop delays them too).
        while True:
            await cluster.call("keep_alive", worker_id="chatty")
            await asyncio.sleep(0.02)

    pinger = asyncio.create_task(keep_alive())
    try:
        await wait_until(lambda: events, what="exit.quit of the silent worker")
        assert events[0] == ("exit.quit", {"purpose": "webrtc", "id": "silent", "type": "worker", "reason": "timeout"})
        assert await cluster.call("keep_alive", worker_id="silent") == "whoareyou"
        assert await cluster.call("get_scheduled", purpose="webrtc", task="session-2") is None
        # Marker: a worker that joins now and never keeps alive is removed after more than five
        # further sweeps; by then the worker that keeps alive has lived through all of them.
        await cluster.join("late", purpose="webrtc")
        await wait_until(lambda: len(events) >= 2, what="exit.quit of the late silent worker")
        assert [(topic, event["id"]) for topic, event in events] == [("exit.quit", "silent"), ("exit.quit", "late")]
        assert [w["id"] for w in await cluster.call("get_workers")] == ["chatty"]
    finally:
        pinger.cancel()


async def test_missed_sweeps_are_counted_and_reset_by_a_keepalive(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(check_alive_interval=0.05, check_alive_count=1000)
    await cluster.join("portal-1")
    await wait_until(lambda: _missed(cluster, "portal-1"), what="a missed sweep")
    await cluster.call("keep_alive", worker_id="portal-1")
    assert (await cluster.call("get_worker", worker_id="portal-1"))["missed_keepalives"] <= 1


async def _missed(cluster: Cluster, worker_id: str) -> bool:
    worker = await cluster.call("get_worker", worker_id=worker_id)
    return bool(worker["missed_keepalives"] >= 2)


async def test_a_rejoin_in_service_resets_the_tasks_but_keeps_the_worker_and_its_drain(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("portal-1")
    await cluster.call("pick_up_tasks", worker_id="portal-1", tasks=["a", "b"])
    await cluster.call("drain", worker_id="portal-1")

    assert await cluster.join("portal-1", hostname="new-host") == "in-service"

    worker = await cluster.call("get_worker", worker_id="portal-1")
    assert worker["drained"] is True
    assert worker["executing"] == 0
    assert worker["info"] == {"hostname": "new-host"}
    assert await cluster.call("get_tasks", worker_id="portal-1") == []
    assert await cluster.call("keep_alive", worker_id="portal-1") == "ok"


async def test_a_rejoin_with_another_purpose_moves_the_worker(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("w-1", purpose="portal")
    await cluster.join("w-1", purpose="conference")
    assert [w["id"] for w in await cluster.call("get_workers", purpose="portal")] == []
    assert [w["purpose"] for w in await cluster.call("get_workers")] == ["conference"]


async def test_load_and_state_reports_decide_who_takes_new_tasks(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("portal-1", max_load=0.8)
    await cluster.call("report_load", worker_id="portal-1", load=0.9)
    with pytest.raises(RpcRemoteError) as err:
        await cluster.call("schedule", purpose="portal", task="t1")
    assert err.value.code == "no_worker_available"

    await cluster.call("report_load", worker_id="portal-1", load=0.1)
    await cluster.call("report_state", worker_id="portal-1", state="unavailable")
    with pytest.raises(RpcRemoteError) as err:
        await cluster.call("schedule", purpose="portal", task="t1")
    assert err.value.code == "no_worker_available"
    assert (await cluster.call("get_worker", worker_id="portal-1"))["state"] == "unavailable"

    await cluster.call("report_state", worker_id="portal-1", state=2)
    assert (await cluster.call("schedule", purpose="portal", task="t1"))["id"] == "portal-1"
