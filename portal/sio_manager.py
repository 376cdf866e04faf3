"""The portal's Socket.IO client manager: python-socketio's, with an ``emit`` that sends in place.

python-socketio's ``AsyncManager.emit`` starts one task per recipient and waits for them all, even
for a single recipient; sending a packet to an Engine.IO socket only appends it to that socket's
queue, so the portal sends to each recipient in turn in the emitting task: same packets, same order,
no task and no extra loop turn per notification.  A recipient that fails is logged and skipped,
as before (the tasks' failures were not raised either).  Emits with an ack callback keep the
library's path.
"""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

from .logs import EventLog

__all__ = ["InPlaceManager"]

log = EventLog()


class InPlaceManager(socketio.AsyncManager):  # type: ignore[misc]
    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        if callback is not None:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to,
                               **kwargs)
            return
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):
            args = list(data)
        else:
            args = [] if data is None else [data]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        frames = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in (encoded if isinstance(encoded, list) else [encoded])]
        send = self.server.eio.send_packet
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid in skip:
                continue
            for frame in frames:
                try:
                    await send(eio_sid, frame)
                except Exception:  # noqa: BLE001 - one recipient's failure must not stop the others
                    log.warning("emit_failed", event=event, sid=sid, exc_info=True)
                    break
