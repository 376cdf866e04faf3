"""A throwaway RabbitMQ node on loopback for tests, benchmarks and local trials.

It runs Debian's ``rabbitmq-server`` in the foreground as a child process with its own ports
(AMQP, distribution, epmd), data directory and Erlang cookie, so it never touches a system broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RabbitNode", "rabbitmq_available", "DEFAULT_PLUGINS"]

#: The event exchange lets the cluster manager learn within milliseconds that a worker's
#: connection closed (see docs/design-notes.md, "Failure detection").
DEFAULT_PLUGINS = ("rabbitmq_event_exchange",)

_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
_CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def rabbitmq_available() -> bool:
    return os.path.exists(_SERVER)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RabbitNode:
    """One broker node; ``start()``, ``stop()``, ``restart()``; ``url`` for clients."""

    def __init__(
        self, base_dir: str | None = None, *, start_timeout: float = 60.0,
        plugins: Sequence[str] = DEFAULT_PLUGINS, epmd_port: int | None = None, cookie: str | None = None,
    ) -> None:
        if not rabbitmq_available():
            raise RuntimeError("rabbitmq-server is not installed: run `make test` (apt-get install rabbitmq-server)")
        self._own_dir = base_dir is None
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="switchboard-rmq-"))
        self.port = _free_port()
        self.dist_port = _free_port()
        #: Nodes of one cluster share an epmd (it is how they find each other's distribution port).
        self.epmd_port = epmd_port or _free_port()
        self.nodename = f"sb{self.port}@localhost"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        (self.base / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        if cookie is not None:  # nodes of one cluster share the Erlang cookie
            path = self.base / ".erlang.cookie"
            path.write_text(cookie)
            path.chmod(0o400)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int | None:
        """The Erlang VM's pid (for CPU accounting)."""
        return self.proc.pid if self.proc else None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=str(self.base),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_LOGS=str(self.base / "log" / "rabbit.log"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        log = open(self.base / "server.out", "ab")
        self.proc = subprocess.Popen(
            [_SERVER], env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: see {self.base / 'server.out'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"rabbitmq-server did not listen on {self.port} within {self.start_timeout} s")

    def kill(self) -> None:
        """``kill -9`` of the node (its whole process group): no goodbye to its clients or peers."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        """Stop the node (SIGTERM to its process group, then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl`` against this node."""
        out = subprocess.run(
            [_CTL, "-n", self.nodename, *args], env=self._env(), capture_output=True, text=True, timeout=30
        )
        return out.stdout

    def ctl_checked(self, *args: str) -> str:
        """Run ``rabbitmqctl`` against this node; a failure raises with its output."""
        out = subprocess.run(
            [_CTL, "-n", self.nodename, *args], env=self._env(), capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.nodename}: {out.stdout}{out.stderr}")
        return out.stdout

    def close(self) -> None:
        self.stop()
        # The node starts a detached epmd on its own port; stop that too.
        epmd = shutil.which("epmd") or next(iter(sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None)
        if epmd:
            subprocess.run([str(epmd), "-kill"], env=self._env(), capture_output=True, check=False, timeout=10)
        if self._own_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
