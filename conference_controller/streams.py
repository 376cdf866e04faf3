"""Stream (publication) and subscription records, and the StreamInfo the OWT JS SDK expects."""

from __future__ import annotations

from typing import Any

import msgspec

from .ids import ParticipantId, StreamId, SubscriptionId, TransportId
from .messages import PublishInfo, SubscribeInfo

__all__ = ["StreamRecord", "SubscriptionRecord"]


class StreamRecord:
    """A forward stream published by a participant; announced (``stream add``) once ready."""

    def __init__(self, id: StreamId, owner: ParticipantId, transport_id: TransportId, info: PublishInfo) -> None:
        self.id = id
        self.owner = owner
        self.transport_id = transport_id
        self.info = info
        self.ready = False
        tracks = info.media.tracks if info.media is not None else []
        self.tracks: list[dict[str, Any]] = []
        for index, track in enumerate(tracks):
            entry: dict[str, Any] = {
                "id": f"{id}-{track.mid if track.mid is not None else index}",
                "type": track.type,
                "source": track.source,
                "status": "active",
            }
            if track.mid is not None:
                entry["mid"] = track.mid
            self.tracks.append(entry)

    @property
    def kinds(self) -> set[str]:
        return {track["type"] for track in self.tracks}

    def has_track(self, track_id: str) -> bool:
        return track_id == self.id or any(track["id"] == track_id for track in self.tracks)

    def set_status(self, kind: str, status: str) -> bool:
        """Set the status of every track of ``kind``; False if the stream has none."""
        matched = [track for track in self.tracks if track["type"] == kind]
        for track in matched:
            track["status"] = status
        return bool(matched)

    def to_info(self) -> dict[str, Any]:
        """StreamInfo as in OWT's portal format (``stream add``, join result)."""
        info: dict[str, Any] = {
            "id": self.id,
            "type": "forward",
            "media": {"tracks": [dict(track) for track in self.tracks]},
            "info": {
                "owner": self.owner,
                "type": "webrtc",
                "inViews": [],
                "attributes": self.info.attributes if self.info.attributes is not None else {},
            },
        }
        if self.info.data:
            info["data"] = True
        return info


class SubscriptionRecord:
    """A participant's subscription to tracks of one or more streams."""

    def __init__(
        self, id: SubscriptionId, owner: ParticipantId, transport_id: TransportId, info: SubscribeInfo,
        streams: set[StreamId],
    ) -> None:
        self.id = id
        self.owner = owner
        self.transport_id = transport_id
        self.info = info
        self.streams = streams
        self.ready = False

    def to_info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "transportId": self.transport_id,
            "ready": self.ready,
            "media": msgspec.to_builtins(self.info.media),
        }
