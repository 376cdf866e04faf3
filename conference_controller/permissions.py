"""``control_participant``: OWT's json-patch ops on a participant's permission.

Paths: ``/permission/{publish|subscribe}`` with ``{audio: bool, video: bool}``, or
``/permission/{publish|subscribe}/{audio|video}`` with a bool; the only op is ``replace``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from contracts.controller import PatchOp, Permission

from .errors import InvalidJsonOp, InvalidJsonPath, InvalidJsonValue

__all__ = ["apply_patch"]

_ACTIONS = ("publish", "subscribe")
_KINDS = ("audio", "video")


def apply_patch(permission: Permission, ops: Sequence[PatchOp]) -> Permission:
    """A new permission with ``ops`` applied; the input is left alone if any op is invalid."""
    result: dict[str, dict[str, bool]] = msgspec.to_builtins(permission)
    for op in ops:
        if op.op != "replace":
            raise InvalidJsonOp(f"invalid json op {op.op!r}")
        parts = op.path.strip("/").split("/")
        if len(parts) not in (2, 3) or parts[0] != "permission" or parts[1] not in _ACTIONS:
            raise InvalidJsonPath(f"invalid json path {op.path!r}")
        media = result[parts[1]]
        if len(parts) == 3:
            if parts[2] not in _KINDS:
                raise InvalidJsonPath(f"invalid json path {op.path!r}")
            media[parts[2]] = _bool(op.value)
            continue
        if not isinstance(op.value, dict) or not set(op.value) <= set(_KINDS):
            raise InvalidJsonValue(f"invalid json value for {op.path}")
        for kind, value in op.value.items():
            media[kind] = _bool(value)
    return msgspec.convert(result, Permission)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidJsonValue(f"invalid json value {value!r}: expected a bool")
    return value
