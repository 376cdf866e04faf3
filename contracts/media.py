"""A media agent's RPC service (purpose ``webrtc``; service name: the agent's worker id): what a
controller calls on the agent that holds a transport (docs/media-agents.md).

Agents are separate programs; the reference one the tests run is ``tests/support/media_agent.py``.
An agent reports back through the controller's ``on_session_progress``
(:class:`contracts.controller.ControllerClient`).  :class:`MediaAgentClient` is the calling side.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .client import ServiceClient

__all__ = ["SessionStatus", "ControllerMovedResult", "MediaAgentClient"]

#: A session an agent has: its media flows (``ready``) or is being set up (``pending``).
SessionStatus = Literal["ready", "pending"]


def _ok(answer: Any) -> str:
    return msgspec.convert(answer, str)


class ControllerMovedResult(msgspec.Struct, frozen=True):
    #: The sessions the agent has on the transports named, by session id.
    sessions: dict[str, SessionStatus]


class MediaAgentClient(ServiceClient):
    """Calls on one media agent (``target``: its worker id).  An agent answers ``"ok"`` to everything
    but ``controller_moved``; an answer of another shape raises ``msgspec.ValidationError``."""

    async def publish(self, *, transport_id: str, stream_id: str, participant: str, controller: str,
                      info: dict[str, Any], timeout: float | None = None) -> str:
        """Set up the publication ``stream_id`` on the transport; progress goes to ``controller``."""
        return _ok(await self._transport.call(self._target, "publish", {
            "transport_id": transport_id, "stream_id": stream_id, "participant": participant,
            "controller": controller, "info": info}, timeout=timeout))

    async def subscribe(self, *, transport_id: str, subscription_id: str, participant: str, controller: str,
                        info: dict[str, Any], timeout: float | None = None) -> str:
        """Set up the subscription ``subscription_id`` on the transport; progress goes to ``controller``."""
        return _ok(await self._transport.call(self._target, "subscribe", {
            "transport_id": transport_id, "subscription_id": subscription_id, "participant": participant,
            "controller": controller, "info": info}, timeout=timeout))

    async def unpublish(self, *, transport_id: str, stream_id: str, timeout: float | None = None) -> str:
        """The publication ended."""
        return _ok(await self._transport.call(self._target, "unpublish",
                                          {"transport_id": transport_id, "stream_id": stream_id}, timeout=timeout))

    async def unsubscribe(self, *, transport_id: str, subscription_id: str, timeout: float | None = None) -> str:
        """The subscription ended."""
        return _ok(await self._transport.call(self._target, "unsubscribe",
                                          {"transport_id": transport_id, "subscription_id": subscription_id},
                                          timeout=timeout))

    async def control(self, *, transport_id: str, session_id: str, operation: str, data: Any,
                      timeout: float | None = None) -> str:
        """A stream or subscription control (``pause``, ``play``, ``update``…) for that session."""
        return _ok(await self._transport.call(self._target, "control", {
            "transport_id": transport_id, "session_id": session_id, "operation": operation, "data": data},
            timeout=timeout))

    async def signaling(self, *, transport_id: str, signaling: dict[str, Any], timeout: float | None = None) -> str:
        """A client's signaling message (offer, candidate, removed-candidates) for the transport."""
        return _ok(await self._transport.call(self._target, "signaling",
                                          {"transport_id": transport_id, "signaling": signaling}, timeout=timeout))

    async def controller_moved(self, *, transport_ids: list[str], controller: str,
                               timeout: float | None = None) -> ControllerMovedResult:
        """The sessions on ``transport_ids`` report to ``controller`` now (a takeover); the sessions
        the agent has on them."""
        answer = await self._transport.call(self._target, "controller_moved",
                                            {"transport_ids": transport_ids, "controller": controller},
                                            timeout=timeout)
        return msgspec.convert(answer, ControllerMovedResult)
