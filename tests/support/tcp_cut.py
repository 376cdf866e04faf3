"""A TCP forwarder in front of one server that can cut the network: every connection through it
is reset at once, and new ones are refused for a while (the path between clients and a portal
lost, the portal itself alive); or stall it: connections stay open and nothing gets through."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["CutProxy"]

_CHUNK = 65536


class CutProxy:
    """Forwards ``127.0.0.1:listen_port`` to ``127.0.0.1:target_port``; :meth:`cut` resets every
    connection through it and refuses new ones until :meth:`restore`."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.refusing = False
        self.stalled = False
        #: Connections reset by :meth:`cut`, and connections refused while cut.
        self.resets = 0
        self.refused = 0
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def cut(self) -> int:
        """Reset every connection through the proxy (RST both ways) and refuse new ones; how many
        were cut."""
        self.refusing = True
        pairs, self._pairs = self._pairs, set()
        for client, server in pairs:
            client.transport.abort()
            server.transport.abort()
        self.resets += len(pairs)
        return len(pairs)

    def restore(self) -> None:
        self.refusing = False
        self.stalled = False

    def stall(self) -> None:
        """Keep every connection open but forward nothing either way (a path that black-holes its
        traffic: the peers notice only by their own timeouts) until :meth:`restore`."""
        self.stalled = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, upstream)
        self._pairs.add(pair)
        for source, sink in ((reader, upstream), (upstream_reader, writer)):
            task = asyncio.ensure_future(self._pipe(source, sink, pair))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        try:
            while data := await source.read(_CHUNK):
                if self.stalled:
                    continue  # black-holed
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if pair in self._pairs:  # one side closed: close the other, as a NAT would
                self._pairs.discard(pair)
                for side in pair:
                    with contextlib.suppress(Exception):
                        side.close()
