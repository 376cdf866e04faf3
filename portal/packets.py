"""How the portal writes Socket.IO packets: JSON by msgspec, and never a binary event.

python-socketio's default packet encodes with ``json.dumps(..., separators=…)`` (a new encoder per
packet) and walks every outgoing payload looking for ``bytes`` to split into binary attachments.
The OWT protocol is JSON only and every payload the portal emits came through JSON-shaped RPC, so
the portal's packets skip the walk and encode with msgspec: bytes, should a client send binary
attachments, come out as base64 strings — as they would after crossing RabbitMQ in cluster mode.
Decoding accepts what the default accepts, except what JSON does not allow (``NaN``, ``Infinity``).
"""

from __future__ import annotations

from typing import Any

import msgspec
import socketio.packet

__all__ = ["JsonPacket"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class _MsgspecJson:
    """The two functions python-socketio calls on its ``json`` module."""

    @staticmethod
    def dumps(obj: Any, **_options: Any) -> str:
        return _encoder.encode(obj).decode()

    @staticmethod
    def loads(text: str | bytes, **_options: Any) -> Any:
        try:
            return _decoder.decode(text)
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from None
        except RecursionError:
            raise ValueError("JSON nested too deep") from None


class JsonPacket(socketio.packet.Packet):  # type: ignore[misc]
    uses_binary_events = False
    json = _MsgspecJson
