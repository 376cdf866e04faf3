"""The room configuration the controller reads (``rooms.get_room``'s answer).

Unknown fields are accepted (the token API may send more than we read).  The shapes of the
controller's own RPC service are in :mod:`contracts.controller`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.controller import MediaPermission, Permission

__all__ = ["RoleConfig", "RoomConfig"]


class RoleConfig(msgspec.Struct):
    role: str
    publish: MediaPermission = msgspec.field(default_factory=MediaPermission)
    subscribe: MediaPermission = msgspec.field(default_factory=MediaPermission)

    def permission(self) -> Permission:
        return Permission(publish=self.publish, subscribe=self.subscribe)


class RoomConfig(msgspec.Struct):
    """What ``rooms.get_room`` answers (OWT field names)."""

    id: str
    name: str = ""
    participant_limit: int = msgspec.field(default=-1, name="participantLimit")
    roles: list[RoleConfig] = []
    views: list[Any] = []

    def role(self, name: str) -> RoleConfig | None:
        return next((role for role in self.roles if role.role == name), None)

    def view_labels(self) -> list[str]:
        labels = []
        for view in self.views:
            if isinstance(view, dict):
                labels.append(str(view.get("label", "")))
            else:
                labels.append(str(view))
        return labels
