"""A controller whose start fails undoes what it did (its own journal, its RPC service, its fault
subscription, its cluster membership), and one that failed or was stopped refuses to start again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from conference_controller import Controller, ControllerSettings
from journal import JournalUnavailable
from journal.sqlite import SqliteJournal
from rpc import RpcUnavailable, Transport
from rpc.settings import WorkerSettings
from tests.support.fake_cluster_manager import FakeClusterManager
from tests.support.transports import TransportFactory

WORKER = WorkerSettings(join_retries=1, join_interval=0.0)


@pytest_asyncio.fixture
async def transports() -> AsyncIterator[TransportFactory]:
    factory = TransportFactory("local")
    yield factory
    await factory.close()


async def _controller(transports: TransportFactory, journal: SqliteJournal) -> Controller:
    return Controller(await transports.make("controller"), ControllerSettings(), WORKER,
                      worker_id="conference-under-test", journal=journal, own_journal=True, adopt_rooms=True)


async def _served(caller: Transport, controller: Controller) -> bool:
    try:
        await caller.call(controller.worker_id, "no_such_method", {})
    except RpcUnavailable:
        return False
    except Exception:
        return True
    return True


def _tasks_of(controller: Controller) -> list[str]:
    return [task.get_name() for task in asyncio.all_tasks() if controller.worker_id in task.get_name()]


async def _journal_closed(journal: SqliteJournal) -> bool:
    try:
        await journal.replay("room")
    except JournalUnavailable:
        return True
    return False


async def test_a_controller_that_cannot_join_closes_its_journal_and_serves_nothing(
    transports: TransportFactory, tmp_path: Path
) -> None:
    caller = await transports.make("caller")  # no cluster manager: the join fails
    journal = SqliteJournal(tmp_path / "journal.sqlite3")
    controller = await _controller(transports, journal)
    with pytest.raises(RpcUnavailable, match="could not join"):
        await controller.start()
    assert not await _served(caller, controller)
    assert not transports.local._subscriptions
    assert await _journal_closed(journal)
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await controller.start()


async def test_a_controller_whose_rooms_cannot_be_adopted_quits_the_cluster(
    transports: TransportFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = await transports.make("caller")
    manager = FakeClusterManager()
    await caller.serve(WORKER.cluster_name, manager)
    journal = SqliteJournal(tmp_path / "journal.sqlite3")

    async def unreadable() -> list[str]:
        raise JournalUnavailable("the test's journal cannot list its rooms")

    monkeypatch.setattr(journal, "rooms", unreadable)
    controller = await _controller(transports, journal)
    with pytest.raises(JournalUnavailable, match="cannot list"):
        await controller.start()
    assert manager.quits == [controller.worker_id]
    assert _tasks_of(controller) == []
    assert not await _served(caller, controller)
    assert await _journal_closed(journal)


async def test_a_stopped_controller_cannot_be_started_again(transports: TransportFactory, tmp_path: Path) -> None:
    caller = await transports.make("caller")
    await caller.serve(WORKER.cluster_name, FakeClusterManager())
    controller = await _controller(transports, SqliteJournal(tmp_path / "journal.sqlite3"))
    await controller.start()
    await controller.start()  # idempotent while running
    await controller.stop()
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await controller.start()
