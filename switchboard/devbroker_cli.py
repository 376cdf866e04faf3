"""``switchboard broker``: a throwaway local RabbitMQ node (:class:`switchboard.devbroker.RabbitNode`,
as the tests start them) for trying the cluster mode.  It prints the node's URL and the command that
runs a local cluster on it; Ctrl-C (or SIGTERM) stops the node and deletes its data."""

from __future__ import annotations

import signal
import sys
import threading

from .devbroker import RabbitNode, rabbitmq_available

__all__ = ["run_broker"]


def _tail(node: RabbitNode, lines: int = 5) -> str:
    """The last lines the node printed (its directory goes when it stops)."""
    try:
        text = (node.base / "server.out").read_text(errors="replace")
    except OSError:
        return ""
    last = text.strip().splitlines()[-lines:]
    return ("; it printed:\n" + "\n".join(last)) if last else ""


def run_broker(*, start_timeout: float) -> int:
    if not rabbitmq_available():
        print("switchboard broker: rabbitmq-server is not installed (Debian/Ubuntu: apt-get install "
              "rabbitmq-server); or run any RabbitMQ and pass its URL to --broker", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    node = RabbitNode(start_timeout=start_timeout)
    try:
        print(f"starting a throwaway RabbitMQ node in {node.base} …", flush=True)
        try:
            node.start()
        except RuntimeError as exc:
            print(f"switchboard broker: {exc}{_tail(node)}", file=sys.stderr)
            return 2
        print(f"broker {node.url}", flush=True)
        print(f"  a local cluster on it:  switchboard up --broker {node.url} --portals 2 --controllers 2", flush=True)
        print("Ctrl-C stops it (and deletes its data).", flush=True)
        while not stop.wait(0.5) and node.proc is not None and node.proc.poll() is None:
            pass
        if not stop.is_set():
            print(f"switchboard broker: the node exited{_tail(node)}", file=sys.stderr)
            return 1
        return 0
    finally:
        node.close()
