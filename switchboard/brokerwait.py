"""Before ``switchboard up --broker URL`` starts its children: is there a broker at ``URL``?

One line says it waits; it asks again every ``local_cluster.broker_retry_interval`` seconds, and after
``local_cluster.broker_wait`` seconds it gives up with one line (the children would otherwise each
print a traceback per attempt and be restarted forever).  The check opens a TCP connection and sends
the AMQP 0-9-1 protocol header: a RabbitMQ answers with its ``connection.start`` frame.  A URL that
names the nodes of a RabbitMQ cluster (comma-separated) is answered once any node answers (the roles
connect to the first that does).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["BrokerUnreachable", "broker_address", "probe_broker", "wait_for_broker"]

_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_METHOD_FRAME = 1


class BrokerUnreachable(Exception):
    """No broker answered at the URL within the bound; the message is one line for the user."""


def broker_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of an ``amqp://`` or ``amqps://`` URL (default ports 5672, 5671)."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise BrokerUnreachable(f"the broker URL must start with amqp:// or amqps://, not {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise BrokerUnreachable(f"the broker URL has a bad port: {url!r}") from None
    return parts.hostname or "localhost", port or (5671 if parts.scheme == "amqps" else 5672)


def probe_broker(host: str, port: int, timeout: float, *, tls: bool = False) -> str | None:
    """``None`` when an AMQP broker answers at ``host:port``, else why not (one short phrase)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            if tls:
                return None  # a TLS listener: a TCP connection is as far as this check goes
            conn.settimeout(timeout)
            conn.sendall(_PROTOCOL_HEADER)
            first = conn.recv(1)
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror}"
    except TimeoutError:
        return "no answer in time"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if first[:1] != bytes([_METHOD_FRAME]):
        return "something answers there, but not an AMQP 0-9-1 broker"
    return None


def wait_for_broker(url: str, *, wait: float, interval: float, say: Callable[[str], None],
                    shown_url: str, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once a broker answers at ``url`` (at any of its comma-separated URLs); say once that it
    waits; raise :class:`BrokerUnreachable` after ``wait`` seconds."""
    nodes = [(broker_address(part), urlsplit(part).scheme == "amqps")
             for part in (piece.strip() for piece in url.split(",")) if part]
    if not nodes:
        raise BrokerUnreachable("no broker URL given")
    deadline = clock() + wait
    said = False
    while True:
        why = ""
        for (host, port), tls in nodes:
            why = probe_broker(host, port, timeout=max(0.1, min(interval, deadline - clock())), tls=tls) or ""
            if not why:
                return
        if not said:
            say(f"waiting for the broker at {shown_url} ({why}; giving up after {wait:g} s)")
            said = True
        left = deadline - clock()
        if left <= 0:
            raise BrokerUnreachable(
                f"no broker at {shown_url} after {wait:g} s ({why}); start one (`switchboard broker`) "
                "or give its URL with --broker"
            )
        sleep(min(interval, left))
