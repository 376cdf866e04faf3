"""Permission patches (``control_participant``) on their own."""

from __future__ import annotations

import pytest

from conference_controller.errors import InvalidJsonOp, InvalidJsonPath, InvalidJsonValue
from contracts.controller import MediaPermission, PatchOp, Permission
from conference_controller.permissions import apply_patch
from rpc import ServiceError

def test_permission_patch_ops() -> None:
    base = Permission(publish=MediaPermission(True, True), subscribe=MediaPermission(True, True))
    patched = apply_patch(base, [PatchOp("replace", "/permission/publish", {"audio": False, "video": False}),
                                 PatchOp("replace", "/permission/subscribe/video", False)])
    assert patched == Permission(publish=MediaPermission(False, False), subscribe=MediaPermission(True, False))
    assert base.publish.audio is True
    with pytest.raises(InvalidJsonOp):
        apply_patch(base, [PatchOp("add", "/permission/publish", {})])
    with pytest.raises(InvalidJsonPath):
        apply_patch(base, [PatchOp("replace", "/permission/record", True)])
    with pytest.raises(InvalidJsonValue):
        apply_patch(base, [PatchOp("replace", "/permission/publish/audio", "yes")])

_FULL = Permission(publish=MediaPermission(True, True), subscribe=MediaPermission(True, True))

def test_patch_ops_on_single_kinds_all_apply() -> None:
    patched = apply_patch(_FULL, [PatchOp("replace", "/permission/publish/audio", False),
                                  PatchOp("replace", "/permission/subscribe/video", False)])
    assert patched == Permission(publish=MediaPermission(False, True), subscribe=MediaPermission(True, False))

@pytest.mark.parametrize(
    ("op", "error", "message"),
    [
        (PatchOp("add", "/permission/publish", {}), InvalidJsonOp, "invalid json op 'add'"),
        (PatchOp("replace", "/other/publish", {"audio": True}), InvalidJsonPath, "invalid json path '/other/publish'"),
        (PatchOp("replace", "/permission/publishX", {"audio": True}), InvalidJsonPath,
         "invalid json path '/permission/publishX'"),
        (PatchOp("replace", "/permission/publish/colour", True), InvalidJsonPath,
         "invalid json path '/permission/publish/colour'"),
        (PatchOp("replace", "/permission/publish", True), InvalidJsonValue,
         "invalid json value for /permission/publish"),
        (PatchOp("replace", "/permission/publish/audio", "yes"), InvalidJsonValue,
         "invalid json value 'yes': expected a bool"),
    ],
)

def test_an_invalid_patch_op_is_refused_with_its_reason(op: PatchOp, error: type[ServiceError], message: str) -> None:
    with pytest.raises(error) as info:
        apply_patch(_FULL, [op])
    assert info.value.message == message
