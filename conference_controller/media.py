"""The controller's side of the media agents (purpose ``webrtc``; see ``docs/media-agents.md``).

A transport (one client peer connection) is placed on an agent with
``cluster.schedule('webrtc', transport_id, origin, reserve_time)``; its sessions (publications and
subscriptions) are then set up by calling that agent.  The agent reports progress back through the
controller's ``on_session_progress``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rpc import RpcError, RpcRemoteError, Transport

from .errors import MediaError, NoMediaAgent, PermissionDenied
from .ids import ParticipantId, TransportId, WorkerId
from .logs import EventLog
from .settings import ControllerSettings

__all__ = ["MediaTransport", "MediaGateway", "MEDIA_PURPOSE"]

MEDIA_PURPOSE = "webrtc"
_NO_WORKER = ("no_worker_available", "no_matching_worker")


class MediaTransport:
    """A transport placed on an agent, owned by one participant."""

    def __init__(self, id: TransportId, agent: WorkerId, owner: ParticipantId) -> None:
        self.id = id
        self.agent = agent
        self.owner = owner
        self.sessions: set[str] = set()

    def __repr__(self) -> str:
        return f"MediaTransport(id={self.id!r}, agent={self.agent!r}, owner={self.owner!r})"


class MediaGateway:
    """Places transports on agents and relays session calls to them."""

    def __init__(
        self, transport: Transport, *, cluster: str, controller: WorkerId, settings: ControllerSettings, log: EventLog
    ) -> None:
        self.transport = transport
        self.cluster = cluster
        self.controller = controller
        self.settings = settings
        self.log = log
        self.transports: dict[TransportId, MediaTransport] = {}
        self._opening: dict[TransportId, asyncio.Future[MediaTransport]] = {}

    async def open(self, transport_id: TransportId, owner: ParticipantId, origin: dict[str, Any]) -> MediaTransport:
        """The transport's agent: the one it already has, or a newly scheduled one."""
        known = self.transports.get(transport_id)
        if known is None and transport_id in self._opening:
            known = await asyncio.shield(self._opening[transport_id])
        if known is not None:
            if known.owner != owner:
                raise PermissionDenied(f"transport {transport_id} belongs to another participant")
            return known
        future: asyncio.Future[MediaTransport] = asyncio.get_running_loop().create_future()
        self._opening[transport_id] = future
        try:
            agent = await self._schedule(transport_id, origin)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: concurrent openers re-raise it themselves
            raise
        finally:
            self._opening.pop(transport_id, None)
        media = self.transports[transport_id] = MediaTransport(transport_id, agent, owner)
        future.set_result(media)
        self.log.info("transport_placed", transport=transport_id, agent=agent, participant=owner)
        return media

    async def _schedule(self, transport_id: TransportId, origin: dict[str, Any]) -> WorkerId:
        args = {"purpose": MEDIA_PURPOSE, "task": transport_id, "preference": origin,
                "reserve_time": self.settings.media_reserve_time}
        try:
            placed = await self.transport.call(self.cluster, "schedule", args, timeout=self.settings.media_timeout)
        except RpcRemoteError as exc:
            if exc.code in _NO_WORKER:
                raise NoMediaAgent() from None
            raise NoMediaAgent(f"no media agent available: {exc.code}: {exc.message}") from None
        except RpcError as exc:
            raise NoMediaAgent(f"no media agent available: cluster manager {exc.code}") from None
        return WorkerId(placed["id"])

    async def call(self, media: MediaTransport, method: str, **args: Any) -> Any:
        """Call the transport's agent; failures become ``media_error``."""
        try:
            return await self.transport.call(media.agent, method, args, timeout=self.settings.media_timeout)
        except RpcError as exc:
            raise MediaError(f"media agent {method} failed: {exc.code}: {exc.message}") from None

    async def start_session(
        self, media: MediaTransport, kind: str, session_id: str, participant: ParticipantId, info: dict[str, Any]
    ) -> None:
        """``kind`` is ``publish`` or ``subscribe``; the session is known before the agent answers."""
        media.sessions.add(session_id)
        id_arg = "stream_id" if kind == "publish" else "subscription_id"
        try:
            await self.call(media, kind, transport_id=media.id, participant=participant,
                             controller=self.controller, info=info, **{id_arg: session_id})
        except MediaError:
            self.end_session_record(media, session_id)
            raise

    def end_session_record(self, media: MediaTransport, session_id: str) -> None:
        media.sessions.discard(session_id)
        self.release(media)

    def release(self, media: MediaTransport) -> None:
        """Forget a transport that has no sessions left."""
        if not media.sessions and self.transports.get(media.id) is media:
            del self.transports[media.id]

    async def stop_session(self, media: MediaTransport, kind: str, session_id: str) -> None:
        """Tell the agent the session ended (best effort) and forget it."""
        self.end_session_record(media, session_id)
        method = "unpublish" if kind == "publish" else "unsubscribe"
        id_arg = "stream_id" if kind == "publish" else "subscription_id"
        try:
            await self.transport.call(media.agent, method, {"transport_id": media.id, id_arg: session_id},
                                      timeout=self.settings.media_timeout)
        except RpcError as exc:
            self.log.info("media_teardown_failed", transport=media.id, agent=media.agent, session=session_id,
                          error=exc.code)

    def agent_lost(self, agent: WorkerId) -> list[MediaTransport]:
        """Forget every transport on ``agent`` and return them."""
        lost = [media for media in self.transports.values() if media.agent == agent]
        for media in lost:
            del self.transports[media.id]
        return lost
