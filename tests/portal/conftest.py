from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.support.transports import TransportFactory

from .harness import Harness


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[Harness]:
    """The real cluster manager and controller on the in-process transport (replies round-tripped)."""
    factory = TransportFactory("local")
    h = await Harness(factory).start()
    yield h
    await h.close()
    await factory.close()
