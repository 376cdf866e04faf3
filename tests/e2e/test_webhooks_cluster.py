"""Webhooks of a cluster of role processes on RabbitMQ: the controller holding a room is killed
while its attempt to deliver the room's latest event waits for an answer, and before the record that
an earlier event was delivered is written; the room's next holder sends both again from the room's
journaled outbox, and what follows keeps the room's seq order: nothing lost, the one repeat an exact
copy of what was already delivered (docs/webhooks.md, *Guarantees*).  Then an application down for
longer than the attempts: the events become dead letters on the broker, which the real
``switchboard admin dead-letters`` CLI lists and retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from switchboard.client import Client, ClientError
from tests.e2e.test_alerts_cluster import _cli
from tests.support.app_webhooks import AppReceiver
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]


async def test_a_controller_killed_mid_room_loses_no_event_and_keeps_the_rooms_order(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    app = AppReceiver()
    await app.start()
    config = app.config(attempts=3, backoff_initial=0.1, backoff_max=0.3)
    config["endpoints"][0]["timeout"] = 20.0  # the attempt in flight at the kill waits, not retries
    cluster = process_cluster(portals=2, controllers=2, env_overrides={
        "SWITCHBOARD_WEBHOOKS__ENDPOINTS": json.dumps(config["endpoints"]),
        **{f"SWITCHBOARD_WEBHOOKS__{key.upper()}": str(config[key])
           for key in ("attempts", "backoff_initial", "backoff_max", "backoff_jitter")},
        "SWITCHBOARD_CONTROLLER__ROOM_GRACE_PERIOD": "1.0",
        "SWITCHBOARD_CONTROLLER__ACK_RECORD_DELAY": "60",  # a done event's record waits for the next one
    })
    clients: list[Client] = []
    try:
        await cluster.start()
        alice = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="hooked",
                                  user="alice", role="presenter", preference={"isp": "isp-1"})
        clients.append(alice)
        await wait_until(lambda: len(app.distinct("hooked")) == 2, timeout=20, what="two events")
        owner, _ = await cluster.holder_of("hooked")
        app.hold()
        bob = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="hooked", user="bob",
                                role="presenter", preference={"isp": "isp-2"})
        await wait_until(lambda: app.parked == 1, timeout=20, what="bob's join (seq 3) in flight")
        await bob.leave()  # participant.left (seq 4), decided and journaled meanwhile
        # seq 3 delivered now: its HooksSent record waits (ack_record_delay) and nothing else is written …
        app.release(200, hold_on=True)
        await wait_until(lambda: app.parked == 2, timeout=20, what="the left event (seq 4) in flight")
        cluster.kill(owner)  # … when its holder is killed (SIGKILL), seq 4 still undelivered
        app.release()

        async def spoke() -> bool:  # the room lives on elsewhere once it is taken over
            try:
                await alice.send_text("all", "still here")
            except ClientError:
                return False
            return True

        await wait_until(spoke, timeout=30, interval=0.5, what="the room on the other controller")
        await wait_until(lambda: any(e["type"] == "participant.left" for e in app.accepted), timeout=30,
                         what="the left event, from the next holder")
        await alice.leave()
        clients.clear()
        await wait_until(lambda: app.distinct("hooked")[-1]["type"] == "room.finished", timeout=30,
                         what="room.finished")

        app.check_order("hooked")  # seq order, no gap; a repeat is an exact copy of what came first
        # seq 3 came twice: delivered by the killed holder, whose record of it was not written yet.
        seqs = [e["seq"] for e in app.of_room("hooked")]
        assert seqs[:5] == [1, 2, 3, 3, 4], seqs
        events = app.distinct("hooked")
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        kinds = [(e["type"], e["data"].get("user", "")) for e in events]
        assert kinds[:4] == [("room.started", ""), ("participant.joined", "alice"), ("participant.joined", "bob"),
                             ("participant.left", "bob")]
        assert kinds[-2:] == [("participant.left", "alice"), ("room.finished", "")]
        # After the failover, alice is only taken back (resumed) or held and resumed: never joined again.
        assert set(kinds[4:-2]) <= {("participant.resumed", "alice"), ("participant.held", "alice")}, kinds
        assert app.rejected == []

        # An application down for longer: dead letters on the broker, which `retry` delivers (through
        # any controller's <cluster>.webhooks).
        app.status = 503
        late = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="late", user="carol",
                                 role="presenter")
        clients.append(late)

        async def letters() -> list[dict[str, Any]]:
            code, out = await _cli(cluster, "list", "--json")
            assert code == 0, out
            return [d for d in json.loads(out) if "of room late" in d["description"]]

        async def two() -> list[dict[str, Any]] | None:
            found = await letters()
            return found if len(found) == 2 else None

        found = await wait_until(two, timeout=30, interval=0.5, what="two webhook dead letters")
        assert sorted(d["description"] for d in found) == ["webhook participant.joined of room late (seq 2) to app",
                                                           "webhook room.started of room late (seq 1) to app"]
        app.status = 200
        for letter in sorted(found, key=lambda d: str(d["description"]), reverse=True):
            code, out = await _cli(cluster, "retry", letter["id"])
            assert code == 0, out
        assert [(e["type"], e["seq"]) for e in app.of_room("late")] == [("room.started", 1), ("participant.joined", 2)]
        assert await letters() == []
    except BaseException:
        print(cluster.logs_tail(3000))
        raise
    finally:
        for client in clients:
            await client.close()
        await app.stop()
