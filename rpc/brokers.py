"""The addresses of a RabbitMQ cluster, and a robust connection that fails over between them.

``rpc.broker_url`` names one broker node or several (the nodes of one RabbitMQ cluster), separated by
commas: ``amqp://u:p@rmq-1:5672/,amqp://u:p@rmq-2:5672/,amqp://u:p@rmq-3:5672/``.

:class:`FailoverConnection` is aio-pika's robust connection whose every reconnection attempt goes to
the *next* address, round robin: after a loss it tries another node first (the one it was on has most
likely gone), and a node that refuses is left for the next one at once; only after a whole round of
refusals does it wait ``reconnect_interval`` before the next attempt.  Queues, exchanges, bindings and
consumers are restored on whichever node answers, as after a broker restart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import yarl
from aio_pika import RobustConnection

__all__ = ["FailoverConnection", "broker_urls", "connect_first", "redacted"]

_SEPARATOR = re.compile(r"[,\s]+")


def broker_urls(value: str) -> list[str]:
    """The addresses in ``value`` (one URL, or several separated by commas), in order; all must be
    ``amqp://`` or ``amqps://`` URLs on the same virtual host."""
    urls = [url for url in _SEPARATOR.split(value.strip()) if url]
    vhosts = set()
    for url in urls:
        parsed = yarl.URL(url)
        if parsed.scheme not in ("amqp", "amqps") or not parsed.host:
            raise ValueError(f"not a broker address (amqp://host:port/vhost): {redacted(url)!r}")
        vhosts.add(parsed.path[1:] or "/")
    if len(vhosts) > 1:
        raise ValueError(f"the broker addresses name different virtual hosts: {sorted(vhosts)}")
    return urls


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parsed = yarl.URL(url)
    return str(parsed.with_password("******")) if parsed.password else url


class FailoverConnection(RobustConnection):
    """A robust connection over several addresses (see the module's docstring).

    :param urls: the addresses, tried in turn from ``first``.
    """

    def __init__(self, urls: Sequence[str], first: int = 0, **kwargs: Any) -> None:
        if not urls:
            raise ValueError("a connection needs at least one broker address")
        # aio-pika keeps only its own parameters from keyword arguments: the AMQP heartbeat reaches
        # aiormq through each address's query (as ``connect_robust`` would put it there).
        heartbeat = kwargs.pop("heartbeat", None)
        self._given = list(urls)
        self._addresses = [yarl.URL(url) if heartbeat is None else yarl.URL(url).update_query(heartbeat=int(heartbeat))
                           for url in urls]
        self._index = first % len(self._addresses)
        self._attempts = 0
        self._connected_since_attempt = False
        #: Attempts in a row that did not connect (reset by a connection).
        self.refusals = 0
        self._interval = 0.0
        self._transport: Any = None
        self._ready = False
        super().__init__(self._addresses[self._index], **kwargs)
        self._ready = True

    @property
    def address(self) -> str:
        """The address of the current (or next) attempt as given, without its password."""
        return redacted(self._given[self._index])

    # aio-pika sets ``transport`` to None at the start of every connection attempt (and in ``close``,
    # after ``_close_called``): the hook that moves the next attempt to the next address.
    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        self._transport = value
        if value is not None or not self._ready or self._close_called:
            return
        if self._attempts > 0:
            if not self._connected_since_attempt:
                self.refusals += 1
            self._index = (self._index + 1) % len(self._addresses)
            self.url = self._addresses[self._index]
        self._connected_since_attempt = False
        self._attempts += 1

    # Between attempts aio-pika sleeps ``reconnect_interval``: not while a round still has
    # addresses it has not tried.
    @property
    def reconnect_interval(self) -> float:
        # Read after an attempt: one that did not connect counts already.
        refusals = self.refusals + (self._attempts > 0 and not self._connected_since_attempt)
        if refusals % len(self._addresses):
            return 0.0
        return self._interval

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._interval = value

    async def _on_connected(self) -> None:
        await super()._on_connected()
        self.refusals = 0
        self._connected_since_attempt = True


async def connect_first(urls: Sequence[str], *, timeout: float, errors: tuple[type[BaseException], ...],
                        on_refused: Callable[[str, BaseException], None] | None = None,
                        **kwargs: Any) -> FailoverConnection:
    """A :class:`FailoverConnection` to the first of ``urls`` that answers within ``timeout`` (each
    tried once, in order); a node failing with one of ``errors`` is told to ``on_refused(url, exc)``
    and the next is tried.  Raises the last node's error when none answers (any other error at once)."""
    for first, url in enumerate(urls):
        conn = FailoverConnection(urls, first, **kwargs)
        try:
            await conn.connect(timeout=timeout)
        except BaseException as exc:
            await conn.close()
            if first == len(urls) - 1 or not isinstance(exc, errors):
                raise
            if on_refused is not None:
                on_refused(url, exc)
            continue
        return conn
    raise ValueError("no broker address given")
