"""A media agent (purpose ``webrtc``, docs/media-agents.md) in a process of its own, for the process
cluster's tests: signaling only, no media.

``python -m tests.support.media_agent --broker amqp://…`` joins the cluster named by the settings
(``SWITCHBOARD_WORKER__CLUSTER_NAME`` …, as every role reads them).  ``publish``/``subscribe``
record a *pending* session; an ``offer`` on a transport is answered with ``soac``, then ``ready`` for
each pending session on it, reported (calls, one transport's reports in order) to the controller that
holds the transport: the one named at ``publish``/``subscribe``, until ``controller_moved`` names
another.  It never ends a session on its own (a lost controller's rooms move, and so do their
sessions).  Every step is one line on stdout (``agent EVENT key=value …``), so a test reads what it
did from the process's log (:func:`agent_lines`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

from contracts.controller import ControllerClient
from contracts.media import ControllerMovedResult, SessionStatus
from rpc import RpcError, Transport, create_transport, rpc_method
from rpc.worker import ClusterWorker
from switchboard.config import load_settings

__all__ = ["MediaAgent", "agent_lines"]

#: A report's call to a controller (one that died does not answer).
_REPORT_TIMEOUT = 3.0


def _say(event: str, **fields: Any) -> None:
    print(" ".join([f"agent {event}", *(f"{k}={v}" for k, v in fields.items())]), flush=True)


def agent_lines(log: Path, event: str) -> list[dict[str, str]]:
    """The fields of every ``event`` line the agent wrote to ``log``, in order."""
    found = []
    for line in log.read_text().splitlines():
        words = line.split()
        if words[:2] == ["agent", event]:
            found.append(dict(word.split("=", 1) for word in words[2:]))
    return found


class MediaAgent:
    """The agent's RPC service; sessions by id: ``{transport, controller, kind, status}``."""

    def __init__(self, transport: Transport, worker: ClusterWorker) -> None:
        self.transport = transport
        self.worker = worker
        self.sessions: dict[str, dict[str, str]] = {}
        #: The controller that holds each transport (its sessions report there).
        self.controllers: dict[str, str] = {}
        self._reports: dict[str, asyncio.Task[None]] = {}

    async def _open(self, transport_id: str, session_id: str, kind: str, controller: str) -> str:
        if transport_id not in self.controllers:
            await self.worker.add_task(transport_id)
        self.controllers[transport_id] = controller
        self.sessions[session_id] = {"transport": transport_id, "kind": kind, "status": "pending"}
        _say("session_started", kind=kind, session=session_id, transport=transport_id, controller=controller)
        return "ok"

    @rpc_method
    async def publish(self, transport_id: str, stream_id: str, participant: str, controller: str,
                      info: dict[str, Any]) -> str:
        return await self._open(transport_id, stream_id, "publish", controller)

    @rpc_method
    async def subscribe(self, transport_id: str, subscription_id: str, participant: str, controller: str,
                        info: dict[str, Any]) -> str:
        return await self._open(transport_id, subscription_id, "subscribe", controller)

    def _end(self, session_id: str) -> str:
        if self.sessions.pop(session_id, None) is not None:
            _say("session_ended", session=session_id)
        return "ok"

    @rpc_method
    async def unpublish(self, transport_id: str, stream_id: str) -> str:
        return self._end(stream_id)

    @rpc_method
    async def unsubscribe(self, transport_id: str, subscription_id: str) -> str:
        return self._end(subscription_id)

    @rpc_method
    async def control(self, transport_id: str, session_id: str, operation: str, data: Any) -> str:
        _say("control", session=session_id, operation=operation)
        return "ok"

    @rpc_method
    async def signaling(self, transport_id: str, signaling: dict[str, Any]) -> str:
        if signaling.get("type") == "offer":
            pending = [sid for sid, s in self.sessions.items()
                       if s["transport"] == transport_id and s["status"] == "pending"]
            previous = self._reports.get(transport_id)
            self._reports[transport_id] = asyncio.create_task(self._answer(transport_id, pending, previous))
        return "ok"

    @rpc_method
    async def controller_moved(self, transport_ids: list[str], controller: str) -> ControllerMovedResult:
        known: dict[str, SessionStatus] = {}
        for transport_id in transport_ids:
            if transport_id in self.controllers:
                self.controllers[transport_id] = controller
            known.update({sid: "ready" if s["status"] == "ready" else "pending"
                          for sid, s in self.sessions.items() if s["transport"] == transport_id})
        _say("controller_moved", controller=controller, transports=len(transport_ids), sessions=len(known))
        return ControllerMovedResult(sessions=known)

    async def _answer(self, transport_id: str, sessions: list[str], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await previous
        await self._report(transport_id, None, "soac", {"type": "answer", "sdp": "v=0 media-agent"})
        for session_id in sessions:
            if session_id in self.sessions:
                self.sessions[session_id]["status"] = "ready"
                await self._report(transport_id, session_id, "ready", None)

    async def _report(self, transport_id: str, session_id: str | None, status: str, data: Any) -> None:
        controller = self.controllers[transport_id]
        try:
            await ControllerClient(self.transport, controller).on_session_progress(
                transport_id=transport_id, status=status, session_id=session_id, data=data, timeout=_REPORT_TIMEOUT)
        except RpcError as exc:
            _say("report_failed", status=status, session=session_id, controller=controller, error=exc.code)
            return
        _say("reported", status=status, session=session_id, controller=controller)


async def _serve(broker: str) -> None:
    settings = load_settings(overrides={"rpc": {"broker_url": broker}})
    worker_id = f"webrtc-{uuid.uuid4().hex[:12]}@{socket.gethostname()}"
    transport = create_transport(worker_id, settings.rpc)
    await transport.start()
    worker = ClusterWorker(transport, purpose="webrtc", worker_id=worker_id, info={"max_load": 0.85},
                           settings=settings.worker)
    await transport.serve(worker_id, MediaAgent(transport, worker))
    await worker.start()
    _say("up", worker=worker_id)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await worker.stop()
    await transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.media_agent")
    parser.add_argument("--broker", required=True)
    asyncio.run(_serve(parser.parse_args().broker))


if __name__ == "__main__":
    main()
