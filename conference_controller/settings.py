"""Settings of a conference controller (section ``[controller]``)."""

from __future__ import annotations

import msgspec

__all__ = ["ControllerSettings"]


class ControllerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Schedulable while load is below this.
    max_load: float = 0.85
    #: Seconds a room with nobody left lives on before it is destroyed (OWT: 30 s).
    room_grace_period: float = 30.0
    #: Seconds a held participant (socket lost) may come back before it leaves (OWT: 60 s).
    reconnection_timeout: float = 60.0
    #: Outbox bounds per participant: notifications kept until acknowledged.
    outbox_max_messages: int = 1000
    outbox_max_age: float = 300.0
    #: Request ids remembered per participant for de-duplication.
    dedupe_window: int = 256
