"""The controller's side of the media agents (purpose ``webrtc``; see ``docs/media-agents.md``).

A transport (one client peer connection) is placed on an agent with
``cluster.schedule('webrtc', transport_id, origin, reserve_time)``; its sessions (publications and
subscriptions) are then set up by calling that agent.  The agent reports progress back through the
controller's ``on_session_progress``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec

from contracts.cluster import ClusterClient
from contracts.media import MediaAgentClient, SessionStatus
from rpc import RpcError, RpcRemoteError, Transport

from .errors import MediaError, NoMediaAgent
from .ids import WorkerId
from .logs import EventLog
from .settings import ControllerSettings

__all__ = ["MediaGateway", "MEDIA_PURPOSE"]

MEDIA_PURPOSE = "webrtc"
_NO_WORKER = ("no_worker_available", "no_matching_worker")


_T = TypeVar("_T")


class MediaGateway:
    """Places transports on agents and relays session calls to them (which transport is on which
    agent is room state: :class:`~conference_controller.state.TransportState`)."""

    def __init__(
        self, transport: Transport, *, cluster: str, controller: WorkerId, settings: ControllerSettings, log: EventLog
    ) -> None:
        self.transport = transport
        self.cluster = cluster
        self.controller = controller
        self.settings = settings
        self.log = log
        #: Placements in progress: concurrent sessions on a new transport share one.
        self._placing: dict[str, asyncio.Future[str]] = {}

    async def place(self, transport_id: str, origin: dict[str, Any]) -> str:
        """Schedule a new transport on an agent; its id."""
        placing = self._placing.get(transport_id)
        if placing is not None:
            return await asyncio.shield(placing)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._placing[transport_id] = future
        try:
            agent = await self._schedule(transport_id, origin)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: concurrent placers re-raise it themselves
            raise
        finally:
            self._placing.pop(transport_id, None)
        future.set_result(agent)
        self.log.info("transport_placed", transport=transport_id, agent=agent)
        return agent

    async def _schedule(self, transport_id: str, origin: dict[str, Any]) -> str:
        try:
            placed = await ClusterClient(self.transport, self.cluster).schedule(
                purpose=MEDIA_PURPOSE, task=transport_id, preference=origin,
                reserve_time=self.settings.media_reserve_time, timeout=self.settings.media_timeout)
        except RpcRemoteError as exc:
            if exc.code in _NO_WORKER:
                raise NoMediaAgent() from None
            raise NoMediaAgent(f"no media agent available: {exc.code}: {exc.message}") from None
        except RpcError as exc:
            raise NoMediaAgent(f"no media agent available: cluster manager {exc.code}") from None
        return placed.id

    def _agent(self, agent: str) -> MediaAgentClient:
        return MediaAgentClient(self.transport, agent)

    async def _guarded(self, method: str, call: Awaitable[_T]) -> _T:
        """An agent's call; its failures (or an answer of another shape) become ``media_error``."""
        try:
            return await call
        except RpcError as exc:
            raise MediaError(f"media agent {method} failed: {exc.code}: {exc.message}") from None
        except msgspec.ValidationError as exc:
            raise MediaError(f"media agent {method} answered {exc}") from None

    async def start_session(
        self, agent: str, kind: str, transport_id: str, session_id: str, participant: str, info: dict[str, Any]
    ) -> None:
        """``kind`` is ``publish`` or ``subscribe``."""
        client, timeout = self._agent(agent), self.settings.media_timeout
        if kind == "publish":
            await self._guarded(kind, client.publish(transport_id=transport_id, stream_id=session_id,
                                                     participant=participant, controller=self.controller, info=info,
                                                     timeout=timeout))
        else:
            await self._guarded(kind, client.subscribe(transport_id=transport_id, subscription_id=session_id,
                                                       participant=participant, controller=self.controller, info=info,
                                                       timeout=timeout))

    async def control(self, agent: str, transport_id: str, session_id: str, operation: str, data: Any) -> None:
        """A stream's or subscription's control, relayed to its agent."""
        await self._guarded("control", self._agent(agent).control(
            transport_id=transport_id, session_id=session_id, operation=operation, data=data,
            timeout=self.settings.media_timeout))

    async def signaling(self, agent: str, transport_id: str, signaling: dict[str, Any]) -> None:
        """A client's signaling message, relayed to the agent of its transport."""
        await self._guarded("signaling", self._agent(agent).signaling(
            transport_id=transport_id, signaling=signaling, timeout=self.settings.media_timeout))

    async def moved(self, agent: str, transport_ids: list[str]) -> dict[str, SessionStatus]:
        """Tell an agent that the sessions on ``transport_ids`` report to this controller now (a
        takeover); the sessions it has on them, each ``ready`` or ``pending``.  Failures (or an
        answer of another shape) are ``media_error``."""
        answer = await self._guarded("controller_moved", self._agent(agent).controller_moved(
            transport_ids=transport_ids, controller=self.controller, timeout=self.settings.media_timeout))
        return answer.sessions

    async def stop_session(self, agent: str, kind: str, transport_id: str, session_id: str) -> None:
        """Tell the agent the session ended (best effort)."""
        client, timeout = self._agent(agent), self.settings.media_timeout
        try:
            if kind == "publish":
                await client.unpublish(transport_id=transport_id, stream_id=session_id, timeout=timeout)
            else:
                await client.unsubscribe(transport_id=transport_id, subscription_id=session_id, timeout=timeout)
        except RpcError as exc:
            self.log.info("media_teardown_failed", transport=transport_id, agent=agent, session=session_id,
                          error=exc.code)
        except msgspec.ValidationError:
            self.log.info("media_teardown_failed", transport=transport_id, agent=agent, session=session_id,
                          error="bad_answer")
