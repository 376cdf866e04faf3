"""Typed ids of the controller's records (all plain strings on the wire)."""

from __future__ import annotations

from typing import NewType

__all__ = ["RoomId", "ParticipantId", "WorkerId", "StreamId", "SubscriptionId", "TransportId"]

RoomId = NewType("RoomId", str)
ParticipantId = NewType("ParticipantId", str)
WorkerId = NewType("WorkerId", str)
StreamId = NewType("StreamId", str)
SubscriptionId = NewType("SubscriptionId", str)
TransportId = NewType("TransportId", str)
