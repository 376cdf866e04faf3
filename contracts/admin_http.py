"""The bodies of the admin RPC's HTTP relay, ``POST /admin/rpc`` (served by
``cluster_manager.admin_http``, answered in the same shapes by the token API's dashboard)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["AdminRequest", "AdminAnswer", "AdminError", "AdminErrorBody"]


class AdminRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /admin/rpc``."""

    method: str
    args: dict[str, Any] = {}


class AdminAnswer(msgspec.Struct):
    """Body of a successful ``POST /admin/rpc``: the method's result."""

    result: Any


class AdminError(msgspec.Struct):
    code: str
    message: str


class AdminErrorBody(msgspec.Struct):
    """Body of a refused ``POST /admin/rpc``: the RPC error's ``code`` and ``message``."""

    error: AdminError
