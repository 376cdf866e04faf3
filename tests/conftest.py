"""Fixtures shared by every test package: a real RabbitMQ node, transports of both kinds, the embedded
server in this process and clusters of real role processes on RabbitMQ."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
import pytest_asyncio

from switchboard.config import load_settings
from switchboard.devbroker import RabbitNode, rabbitmq_available
from switchboard.devbroker_cluster import RabbitCluster
from switchboard.wiring import EmbeddedCluster
from tests.support.chaos import chaos  # noqa: F401 - the fault scenarios' results recorder (make chaos)
from tests.support.postgres import PostgresNode, postgres_bin_dir
from tests.support.processes import ProcessCluster
from tests.support.transports import TransportFactory

#: A test that hangs past its timeout ends the run with its stacks instead of using up CI's time.
pytest_plugins = ["tests.support.watchdog"]


@pytest.fixture
def own_rabbit() -> Iterator[RabbitNode]:
    """A RabbitMQ node of the test's own, to stop and restart (not the session's shared one)."""
    node = RabbitNode()
    node.start()
    yield node
    node.close()


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitNode]:
    """One throwaway broker node for the whole session (tests that restart it use their own)."""
    if not rabbitmq_available():
        pytest.fail("rabbitmq-server is not installed; `make test` installs it")
    node = RabbitNode()
    node.start()
    yield node
    node.close()


@pytest.fixture(scope="module")
def rabbit_cluster_of_module() -> Iterator[RabbitCluster]:
    """Three broker nodes in one RabbitMQ cluster, booted in parallel, shared by one test module."""
    if not rabbitmq_available():
        pytest.fail("rabbitmq-server is not installed; `make test` installs it")
    cluster = RabbitCluster(3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def rabbit_cluster(rabbit_cluster_of_module: RabbitCluster) -> RabbitCluster:
    """The module's three-node RabbitMQ cluster with every node running (a node an earlier test
    stopped or killed is started again)."""
    rabbit_cluster_of_module.ensure_running()
    return rabbit_cluster_of_module


@pytest.fixture
def broker_url(rabbit: RabbitNode) -> str:
    return rabbit.url


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresNode]:
    """One throwaway PostgreSQL server for the whole session (each test takes its own database)."""
    if postgres_bin_dir() is None:
        pytest.fail("PostgreSQL is not installed; `make test` installs it")
    node = PostgresNode()
    node.start()
    yield node
    node.close()


@pytest.fixture
def postgres_dsn(postgres: PostgresNode) -> Iterator[str]:
    """The DSN of a new, empty database of the session's PostgreSQL, dropped after the test."""
    name = postgres.create_database()
    yield postgres.dsn(name)
    postgres.drop_database(name)


@pytest_asyncio.fixture(params=["local", "amqp"])
async def transports(request: pytest.FixtureRequest) -> AsyncIterator[TransportFactory]:
    """Parametrised over both transports: ``await transports.make()`` gives a started one."""
    url = request.getfixturevalue("broker_url") if request.param == "amqp" else ""
    factory = TransportFactory(request.param, url)
    yield factory
    await factory.close()


@pytest.fixture(autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded servers (and role processes started from a test) keep their generated keys in a
    throwaway directory, never in the developer's ``~/.local/state``."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(autouse=True)
def _quiet_aio_pika_logs() -> None:
    logging.getLogger("aio_pika").setLevel(logging.ERROR)
    logging.getLogger("aiormq").setLevel(logging.ERROR)


MakeEmbedded = Callable[..., Awaitable[EmbeddedCluster]]
#: ``json_lines()``: the JSON log lines written to stderr since the last call (``json_lines`` fixture).
JsonLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[JsonLines]:
    """Read what ``configure_logging(..., json_lines=True)`` (called by the test) wrote, as dicts;
    the root logger's handlers and level are put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    yield read
    root.handlers[:] = handlers
    root.setLevel(level)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest_asyncio.fixture
async def make_embedded(tmp_path: Path) -> AsyncIterator[MakeEmbedded]:
    """Start an embedded server on free ports; every one made is stopped at the end."""
    made: list[EmbeddedCluster] = []

    async def make(**overrides: Any) -> EmbeddedCluster:
        base = {
            "rpc": {"local_roundtrip": True},
            "token_api": {"host": "127.0.0.1", "port": 0, "rooms_db": str(tmp_path / f"rooms{len(made)}.sqlite3")},
            "portal": {"host": "127.0.0.1", "port": 0, "hostname": "127.0.0.1"},
        }
        cluster = EmbeddedCluster(load_settings(env={}, overrides=_deep_merge(base, overrides)))
        await cluster.start()
        made.append(cluster)
        return cluster

    yield make
    for cluster in reversed(made):
        await cluster.stop()


@pytest.fixture
def process_cluster(
    rabbit: RabbitNode, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ProcessCluster]]:
    """Build (not start) a cluster of role processes on the session broker; all stopped at the end.
    A failed test's report ends with the tail of each process's log."""
    made: list[ProcessCluster] = []
    request.node.process_clusters = made

    def make(**kwargs: Any) -> ProcessCluster:
        cluster = ProcessCluster(rabbit.url, tmp_path, **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Keeps the call phase's report on the item, for ``chaos`` to write the test's outcome; adds the
    tail of every role process's log to a failed report of a test that ran a process cluster."""
    outcome = yield
    if call.when == "call":
        report = outcome.get_result()
        item.chaos_call_report = report  # type: ignore[attr-defined]
        if report.failed:
            for n, cluster in enumerate(getattr(item, "process_clusters", [])):
                report.sections.append((f"process logs of cluster {n + 1} (tails)", cluster.logs_tail(4000)))
