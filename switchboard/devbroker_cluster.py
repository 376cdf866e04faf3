"""A throwaway RabbitMQ *cluster* on loopback (three nodes by default), for tests and local trials.

Each node is a :class:`~switchboard.devbroker.RabbitNode` of its own (AMQP port, distribution port,
data directory); they share one epmd (how Erlang nodes find each other) and one Erlang cookie.  The
nodes boot in parallel, then every node but the first joins the first (``rabbitmqctl join_cluster``).
A node stopped or killed later starts again as a member of the cluster (its data directory says so).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aio_pika

from .devbroker import DEFAULT_PLUGINS, RabbitNode, _free_port

__all__ = ["RabbitCluster"]


async def _declare_and_delete_stream(url: str, name: str) -> None:
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "stream"})
        await channel.queue_delete(name)
    finally:
        await conn.close()


class RabbitCluster:
    """``size`` broker nodes in one cluster; ``start()``, ``close()``; ``kill(i)``, ``stop(i)`` and
    ``start_node(i)`` for one node; ``url`` names every node (comma-separated, ``rpc.broker_url``)."""

    def __init__(
        self, size: int = 3, base_dir: str | None = None, *, start_timeout: float = 90.0,
        plugins: Sequence[str] = DEFAULT_PLUGINS,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self._own_dir = base_dir is None
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="switchboard-rmq-cluster-"))
        epmd_port = _free_port()
        cookie = secrets.token_hex(20).upper()
        self.nodes = []
        for i in range(size):
            (self.base / f"node{i + 1}").mkdir(parents=True, exist_ok=True)
            self.nodes.append(RabbitNode(str(self.base / f"node{i + 1}"), start_timeout=start_timeout,
                                         plugins=plugins, epmd_port=epmd_port, cookie=cookie))
        self._joined = False

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's address, comma-separated: what ``--broker`` / ``rpc.broker_url`` takes."""
        return ",".join(self.urls)

    def start(self) -> None:
        """Boot every node (in parallel) and, the first time, make them one cluster."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for future in [pool.submit(node.start) for node in self.nodes]:
                future.result()
        if self._joined:
            return
        first = self.nodes[0]
        for node in self.nodes[1:]:
            for args in (("stop_app",), ("join_cluster", first.nodename), ("start_app",)):
                node.ctl_checked(*args)
        self._joined = True
        self.wait_running(len(self.nodes))
        self._start_stream_coordinator()

    def _start_stream_coordinator(self) -> None:
        """Start the stream coordinator (RabbitMQ starts it with the first stream declared) and write
        each node's registration of its member to disk.  RabbitMQ 3.10.8 keeps that registration in a
        table written out only after 0.5 s without access; a node killed before (seen: a cluster whose
        first stream was declared seconds before a ``kill -9``) comes back without its coordinator
        member, and the coordinator, one member short, has no majority once another node goes.  A
        cluster in service has long written it: this makes the throwaway cluster one."""
        with ThreadPoolExecutor(1) as pool:  # a loop of its own, whoever calls
            pool.submit(asyncio.run, _declare_and_delete_stream(self.nodes[0].url, "switchboard.devbroker-cluster")).result()
        for node in self.nodes:
            node.ctl_checked("eval", "dets:sync(maps:get(directory_rev, maps:get(names, ra_system:fetch(coordination)))).")

    def running_nodes(self) -> list[str]:
        """Names of the nodes the cluster reports running (asked of any live node)."""
        for node in self.nodes:
            if node.proc is None:
                continue
            out = node.ctl("eval", "rabbit_nodes:all_running().")
            if out.startswith("["):
                return re.findall(r"[\w-]+@[\w.-]+", out)
        return []

    def wait_running(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.running_nodes()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the RabbitMQ cluster did not reach {count} running nodes within {timeout} s")
            time.sleep(0.3)

    def kill(self, index: int) -> None:
        """``kill -9`` of node ``index``."""
        self.nodes[index].kill()

    def stop(self, index: int) -> None:
        """Graceful stop of node ``index`` (SIGTERM: it closes its connections and leaves)."""
        self.nodes[index].stop()

    def start_node(self, index: int) -> None:
        """Start node ``index`` again (it rejoins the cluster) and wait until every node runs and every
        replicated queue (quorum queues, streams) has its replica there online again: only then may
        another node go (a stream whose restarted replica is still catching up has no majority left
        when another node stops: it refuses consumers and confirms until that replica is back)."""
        self.nodes[index].start()
        self.wait_running(sum(node.proc is not None for node in self.nodes))
        self.wait_replicas_online()

    def replicas_behind(self) -> dict[str, tuple[int, int]]:
        """``{queue: (members, online)}`` of every replicated queue with a member not online."""
        for node in self.nodes:
            if node.proc is None:
                continue
            out = node.ctl("list_queues", "name", "members", "online", "--quiet", "--no-table-headers")
            behind = {}
            for line in out.strip().splitlines():
                fields = line.split("\t")
                if len(fields) != 3 or not fields[1].startswith("["):
                    continue
                members, online = (len(re.findall(r"@", field)) for field in fields[1:])
                if online < members:
                    behind[fields[0]] = (members, online)
            return behind
        return {}

    def wait_replicas_online(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while behind := self.replicas_behind():
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas not back online within {timeout} s: {behind}")
            time.sleep(0.5)

    def ensure_running(self) -> None:
        """Start again every node a test stopped or killed."""
        for i, node in enumerate(self.nodes):
            if node.proc is None or node.proc.poll() is not None:
                node.proc = None
                self.start_node(i)

    def close(self) -> None:
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.stop(), self.nodes))
        self.nodes[0].close()  # also stops the epmd they share
        if self._own_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> RabbitCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
