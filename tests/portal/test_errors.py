"""How a controller's coded refusal reaches the client."""

from __future__ import annotations

from portal.errors import from_rpc
from rpc import RpcRemoteError


def test_resync_required_names_the_range_its_details_give_not_its_message() -> None:
    refused = from_rpc(RpcRemoteError("resync_required", "missing 1..2", {"missing_from": 4, "missing_to": 9}))
    assert refused.ack(structured=True) == ("error", {"code": "resync-required",
                                                      "message": "resync required: missing 1..2", "from": 4, "to": 9})


def test_resync_required_without_details_names_no_range() -> None:
    refused = from_rpc(RpcRemoteError("resync_required", "missing 1..2"))
    assert refused.ack(structured=True) == ("error", {"code": "resync-required",
                                                      "message": "resync required: missing 1..2"})
