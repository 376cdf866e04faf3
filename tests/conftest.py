"""Fixtures shared by every test package: a real RabbitMQ node, transports of both kinds."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from switchboard.devbroker import RabbitNode, rabbitmq_available
from tests.support.transports import TransportFactory


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitNode]:
    """One throwaway broker node for the whole session (tests that restart it use their own)."""
    if not rabbitmq_available():
        pytest.fail("rabbitmq-server is not installed; `make test` installs it")
    node = RabbitNode()
    node.start()
    yield node
    node.close()


@pytest.fixture
def broker_url(rabbit: RabbitNode) -> str:
    return rabbit.url


@pytest_asyncio.fixture(params=["local", "amqp"])
async def transports(request: pytest.FixtureRequest) -> AsyncIterator[TransportFactory]:
    """Parametrised over both transports: ``await transports.make()`` gives a started one."""
    url = request.getfixturevalue("broker_url") if request.param == "amqp" else ""
    factory = TransportFactory(request.param, url)
    yield factory
    await factory.close()


@pytest.fixture(autouse=True)
def _quiet_aio_pika_logs() -> None:
    logging.getLogger("aio_pika").setLevel(logging.ERROR)
    logging.getLogger("aiormq").setLevel(logging.ERROR)
