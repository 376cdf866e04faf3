"""The controller on the embedded server's append-only file journal (:mod:`journal.logfile`) when a
write fails (a full disk): the room fails and is unloaded, the lost text reaches nobody, the journal
refuses writes while it cannot restore its tail, and once the disk has room again the journal recovers
in the same process: the controller's reload rebuilds the room and everyone carries on, without a
restart, with no record lost or doubled (a restart afterwards finds the same history)."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from journal.logfile import FileJournal
from journal.settings import Commit, FileJournalSettings
from rpc import RpcRemoteError
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env


def _texts(env: Env, pid: str) -> list[tuple[int, Any]]:
    return [(seq, data["message"]) for seq, _, data in env.portal_b.events(pid, "text")]


@pytest.mark.parametrize("commit", ["turn", "each"])  # submit_then; append_now
async def test_a_room_that_failed_on_a_full_disk_is_reloaded_and_served_once_the_disk_is_back_without_a_restart(
    local: TransportFactory, make_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commit: Commit
) -> None:
    journal = FileJournal(tmp_path / "journal.d", FileJournalSettings(commit=commit))
    await journal.open()
    env: Env = await make_env(local, journal=journal, reconnection_timeout=30.0, reload_interval=0.05)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.join("q1", room="room-2")
    await env.join("q2", room="room-2", portal=env.portal_b)
    await env.call("text", participant="p1", to="p2", message="one", request_id="r1")
    await wait_until(lambda: _texts(env, "p2") == [(1, "one")])

    real = os.write
    short: list[bool] = []

    def full_disk(fd: int, data: Any) -> int:
        if fd != journal._fd:
            return real(fd, data)
        if not short:  # a frame cut short, then nothing more fits
            short.append(True)
            return real(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="p2", message="lost", request_id="r-lost")
    assert info.value.code == "controller_error"
    assert "room-1" not in env.controller.rooms
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="p2", message="still lost")
    assert info.value.code == "room_reloading"
    # Another room's write meets the full disk as well: it fails the same way, nothing applied stays.
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="q1", to="q2", message="lost in room-2")
    assert info.value.code == "controller_error"
    assert "room-2" not in env.controller.rooms
    await asyncio.sleep(0.3)  # the reloads keep failing while the disk is full
    assert "room-1" not in env.controller.rooms

    monkeypatch.undo()  # the disk has room again: no restart
    me = env.controller.worker_id
    await wait_until(lambda: {"room-1", "room-2"} <= {moved[0] for moved in env.portal_a.moved},
                     what="both rooms reloaded and their portals told")
    assert ("room-1", me, me) in env.portal_b.moved
    # Their portals re-attach everyone (what portal/login.py's rehome does), who then carry on.
    for pid, portal in (("p1", env.portal_a), ("p2", env.portal_b), ("q1", env.portal_a), ("q2", env.portal_b)):
        seen = max((seq for seq, _, _ in portal.events(pid)), default=0)
        assert (await env.resume(pid, portal, last_seq=seen))["messages"] == []
    assert await env.call("text", participant="p1", to="p2", message="back", request_id="r-back") == "ok"
    assert await env.call("text", participant="q1", to="q2", message="room-2 back", request_id="r-2") == "ok"
    await wait_until(lambda: _texts(env, "p2")[-1:] == [(2, "back")], what="the text after the recovery")
    await wait_until(lambda: _texts(env, "q2")[-1:] == [(1, "room-2 back")], what="room-2's text")
    assert _texts(env, "p2") == [(1, "one"), (2, "back")]  # the lost text never was, nothing twice
    assert [m for _, m in _texts(env, "q2")] == ["room-2 back"]

    # A restart afterwards finds the same history: nothing lost, nothing doubled.
    await env.controller.stop()
    await journal.close()
    again = FileJournal(tmp_path / "journal.d")
    await again.open()
    try:
        env.controller = await env.start_controller("controller-2", again)
        resumed = await env.call("resume", participant="p2", ticket_id=env.tickets["p2"], new_ticket_id="t-p2",
                                 portal=env.portal_b.name, last_seq=0, room="room-1")
        # "one" was acked by p2's resume after the recovery; "back" was not: it is there, once.
        assert [(m["seq"], m["data"]["message"]) for m in resumed["messages"]] == [(2, "back")]
        resumed = await env.call("resume", participant="q2", ticket_id=env.tickets["q2"], new_ticket_id="t-q2",
                                 portal=env.portal_b.name, last_seq=0, room="room-2")
        assert [m["data"]["message"] for m in resumed["messages"]] == ["room-2 back"]
    finally:
        await env.controller.stop()
        await again.close()


def _raise(exc: BaseException) -> Any:
    raise exc
