"""Settings of a conference controller (section ``[controller]``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from observability import ObserveSettings

__all__ = ["ControllerSettings"]


class ControllerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Schedulable while load is below this.
    max_load: float = 0.85
    #: Seconds a room with nobody left lives on before it is destroyed (OWT: 30 s).
    room_grace_period: float = 30.0
    #: Seconds a held participant (socket lost) may come back before it leaves (OWT: 60 s).
    reconnection_timeout: float = 60.0
    #: Notifications a participant's outbox keeps until acknowledged, at most (the oldest go first).
    outbox_max_messages: int = 1000
    #: Seconds after which a kept notification counts as gone when a resume needs it.
    outbox_max_age: float = 300.0
    #: Seconds the ticket a relogin used stays good for a retry of that same relogin (its answer was
    #: lost on the way), by the same client only: with the relogin's retryKey, or without one only
    #: while the participant has no live socket. Closes early once the client acknowledges anything.
    #: 0 = never.
    ticket_retry_window: float = 30.0
    #: Request ids remembered per participant for de-duplication.
    dedupe_window: int = 256
    #: Participants this process is sized for: the load reported to the cluster is count / this.
    capacity: int = 10000
    #: Timeout of ``rooms.get_room`` at room creation, seconds.
    rooms_timeout: float = 3.0
    #: Timeout of one ``deliver`` or ``drop`` call to a portal, seconds.
    portal_timeout: float = 2.0
    #: Extra attempts of a failed notification call before it is left to replay (``resume``).
    delivery_retries: int = 2
    #: Seconds between those attempts.
    delivery_retry_interval: float = 0.2
    #: Seconds a portal nobody serves (no queue for it at the broker) is still tried, its notifications
    #: kept in order, before its participants are held as if it had quit: a portal whose broker node
    #: was lost is unreachable until it has reconnected and declared its queue again, and the
    #: cluster manager's ``exit.quit`` says sooner when it is really gone (0: hold at once).  Those held
    #: so are then offered back to the portal (``reattach``, in case it was alive all along) until it
    #: answers, ``delivery_retry_interval`` apart at first, each pause twice the last up to 8 times it,
    #: for at most ``reconnection_timeout``.
    portal_unreachable_grace: Annotated[float, msgspec.Meta(ge=0, le=600)] = 15.0
    #: Seconds a per-portal sender with nothing to send lives on before it stops.
    sender_idle_timeout: float = 60.0
    #: Most notifications one ``deliver`` call to a portal carries (what queued up meanwhile).
    delivery_batch: int = 256
    #: Seconds a media agent (purpose ``webrtc``) stays reserved for a transport at scheduling.
    media_reserve_time: float = 30.0
    #: Timeout of ``schedule`` and of a call to a media agent, seconds.
    media_timeout: float = 4.0
    #: With a journal, a room's whole state is saved as a snapshot every this many records, so that a
    #: rebuild replays at most that many (0: never; older records may then be dropped by the journal).
    snapshot_every: int = 1000
    #: With a journal, receipt acks are applied at once but their record may wait this long, seconds,
    #: for the room's next record to ride with (a crash before it is written costs redeliveries,
    #: never a loss); 0 writes each at once.
    ack_record_delay: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.2
    #: Most ack events that wait so per room; with more, they are written at once.
    ack_record_max: Annotated[int, msgspec.Meta(gt=0)] = 256
    #: After a journal write was lost (store or broker down) the room is unloaded and rebuilt here from
    #: the journal, its participants kept: at most this many attempts per round (a participant's next
    #: call starts another round once they ran out) …
    reload_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 30
    #: … the first this many seconds after the loss, each next one twice as long after, up to 8 times it.
    reload_interval: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.5
    #: Drain: the longest another controller may take to rebuild one of this one's rooms, seconds.
    migration_timeout: float = 10.0
    #: Drain: while no other controller takes rooms (every other one drained, full or gone), this
    #: one keeps its rooms, serves them, and asks the cluster again this often, seconds.
    migration_retry_interval: Annotated[float, msgspec.Meta(gt=0, le=300)] = 2.0
    #: Its own ``/metrics``, ``/healthz`` and ``/readyz`` port (``switchboard controller`` processes only;
    #: docs/operations.md, "Health and metrics").
    observe: ObserveSettings = msgspec.field(default_factory=ObserveSettings)
