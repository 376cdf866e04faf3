"""The controller on the embedded server's append-only file journal (:mod:`journal.logfile`) when a
write fails (a full disk): the room fails and is unloaded, the lost text reaches nobody, the journal
refuses writes until it is opened again (so the room's reloads are refused, its participants told to
try again, and every other room that writes fails the same way), and a restart (a new journal over the same directory) rebuilds the room without it."""

from __future__ import annotations

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
async def test_a_failed_write_fails_the_room_until_a_restart_rebuilds_it_without_the_lost_text(
    local: TransportFactory, make_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commit: Commit
) -> None:
    journal = FileJournal(tmp_path / "journal.d", FileJournalSettings(commit=commit))
    await journal.open()
    env: Env = await make_env(local, journal=journal, reconnection_timeout=30.0, reload_interval=0.05,
                              reload_attempts=3)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.join("q1", room="room-2")
    await env.join("q2", room="room-2", portal=env.portal_b)
    await env.call("text", participant="p1", to="p2", message="one", request_id="r1")
    await wait_until(lambda: _texts(env, "p2") == [(1, "one")])

    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: (
        real(fd, data) if fd != journal._fd else _raise(OSError(errno.ENOSPC, "No space left on device"))))
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="p2", message="lost", request_id="r-lost")
    assert info.value.code == "controller_error"
    assert "room-1" not in env.controller.rooms
    monkeypatch.undo()  # the disk has room again, but the journal refuses writes until it is opened again
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="p1", to="p2", message="still lost")
    assert info.value.code == "room_reloading"
    # Another room's next write meets the refusing journal: it fails the same way, nothing applied stays.
    with pytest.raises(RpcRemoteError) as info:
        await env.call("text", participant="q1", to="q2", message="lost in room-2")
    assert info.value.code == "controller_error"
    assert "room-2" not in env.controller.rooms
    await wait_until(lambda: not any(task for task in env.controller._reloads.values() if not task.done()),
                     what="the reloads given up")
    assert "room-1" not in env.controller.rooms

    # The restart: the controller stops, a new journal over the same directory.
    await env.controller.stop()
    await journal.close()
    again = FileJournal(tmp_path / "journal.d")
    await again.open()
    try:
        env.controller = await env.start_controller("controller-2", again)
        resumed = await env.call("resume", participant="p2", ticket_id=env.tickets["p2"], new_ticket_id="t-p2",
                                 portal=env.portal_b.name, last_seq=0, room="room-1")
        assert [m["data"]["message"] for m in resumed["messages"]] == ["one"]  # the lost text never was
        await env.call("resume", participant="p1", ticket_id=env.tickets["p1"], new_ticket_id="t-p1",
                       portal=env.portal_a.name, last_seq=0, room="room-1")
        assert await env.call("text", participant="p1", to="p2", message="back", request_id="r-back",
                              portal=env.portal_a.name) == "ok"
        await wait_until(lambda: _texts(env, "p2")[-1:] == [(2, "back")], what="the text after the restart")
        resumed = await env.call("resume", participant="q2", ticket_id=env.tickets["q2"], new_ticket_id="t-q2",
                                 portal=env.portal_b.name, last_seq=0, room="room-2")
        assert resumed["messages"] == []
        assert "lost in room-2" not in [m for _, m in _texts(env, "q2")]
    finally:
        await env.controller.stop()
        await again.close()


def _raise(exc: BaseException) -> Any:
    raise exc
