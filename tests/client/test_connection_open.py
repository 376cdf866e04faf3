"""Opening a client connection that fails says why, whatever failed."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.client.connection import Connection
from switchboard.client.errors import ConnectionLost


async def test_a_portal_that_never_answers_is_reported_as_a_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the TCP connection, never answers the websocket upgrade
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = Connection(f"http://127.0.0.1:{port}", on_event=lambda *args: None, on_lost=lambda *args: None)
    try:
        with pytest.raises(ConnectionLost, match=rf"cannot connect to http://127.0.0.1:{port}: TimeoutError$"):
            await connection.open(0.2)
        assert connection.lost
    finally:
        server.close()
