"""Readiness: the cluster manager answers, is in service, and at least one portal takes tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rpc import RpcError, Transport

from .placement import PORTAL_PURPOSE

__all__ = ["Readiness", "check_readiness"]


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str
    portals: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "reason": self.reason, "schedulablePortals": self.portals}


async def check_readiness(transport: Transport, cluster_name: str, timeout: float) -> Readiness:
    try:
        status = await transport.call(cluster_name, "status", {}, timeout=timeout)
        workers = await transport.call(cluster_name, "get_workers", {"purpose": PORTAL_PURPOSE}, timeout=timeout)
    except RpcError as exc:
        return Readiness(False, f"cluster manager {cluster_name!r} unreachable: {exc.code}: {exc.message}")
    if isinstance(status, dict) and status.get("state") not in (None, "in-service"):
        return Readiness(False, f"cluster manager is {status.get('state')} (ready in {status.get('ready_in')} s)")
    schedulable = sum(1 for w in workers or [] if isinstance(w, dict) and w.get("schedulable"))
    if not schedulable:
        return Readiness(False, "no schedulable portal")
    return Readiness(True, "ok", schedulable)
