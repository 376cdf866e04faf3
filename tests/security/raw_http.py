"""A raw HTTP/1.1 exchange over TCP, for requests no HTTP client would send."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from yarl import URL

__all__ = ["RawResponse", "exchange", "read_response", "connect"]

#: Longest a test waits for the server to answer or close: a bound, not a measured time.
BOUND = 10.0


@dataclass(frozen=True)
class RawResponse:
    status_line: str
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    #: The server closed the connection after this response.
    closed: bool

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str:
        return str(self.json()["error"]["reason"])


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parsed = URL(url)
    assert parsed.host is not None and parsed.port is not None
    return await asyncio.open_connection(parsed.host, parsed.port)


async def read_response(reader: asyncio.StreamReader) -> RawResponse | None:
    """The next response, or ``None`` if the server closed without one; waits at most :data:`BOUND`."""
    async with asyncio.timeout(BOUND):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b"", f"a partial response: {exc.partial!r}"
            return None
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        closed = await _closed(reader, status_line, headers)
    return RawResponse(status_line, int(status_line.split(" ")[1]), headers, body, closed)


async def _closed(reader: asyncio.StreamReader, status_line: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if connection == "keep-alive" or (connection != "close" and status_line.startswith("HTTP/1.1")):
        # A kept-alive connection stays open (until the server's idle deadline): do not wait for it.
        return False
    return await reader.read() == b""


async def exchange(url: str, data: bytes) -> RawResponse | None:
    """Send ``data`` on a new connection and read one response."""
    reader, writer = await connect(url)
    try:
        writer.write(data)
        return await read_response(reader)
    finally:
        writer.close()
