"""The portal's Socket.IO packets: msgspec JSON, no binary events."""

from __future__ import annotations

import pytest

from portal.packets import JsonPacket
from socketio import packet


def test_events_encode_as_compact_json_with_unicode_kept() -> None:
    encoded = JsonPacket(packet.EVENT, data=["text", {"from": "a", "message": "héllo ✓"}]).encode()
    assert encoded == '2["text",{"from":"a","message":"héllo ✓"}]'


def test_bytes_are_sent_as_base64_not_as_binary_attachments() -> None:
    pkt = JsonPacket(packet.EVENT, data=["text", {"message": b"\x00\x01"}])
    assert pkt.packet_type == packet.EVENT
    assert pkt.encode() == '2["text",{"message":"AAE="}]'


def test_acks_decode_with_their_id() -> None:
    pkt = JsonPacket(encoded_packet='37["ok",{"n":1}]')
    assert (pkt.packet_type, pkt.id, pkt.data) == (packet.ACK, 7, ["ok", {"n": 1}])


def test_what_json_does_not_allow_is_refused() -> None:
    with pytest.raises(ValueError):
        JsonPacket(encoded_packet='2["text",NaN]')
