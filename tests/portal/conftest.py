from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.support.transports import TransportFactory

from .harness import Harness


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[Harness]:
    """A fake cluster and controller on the in-process transport."""
    factory = TransportFactory("local")
    h = await Harness(factory).start()
    yield h
    await h.close()
    await factory.close()
