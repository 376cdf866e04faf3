"""Readiness: the cluster manager answers, is in service, and at least one portal takes tokens."""

from __future__ import annotations

from dataclasses import dataclass
import msgspec

from contracts.cluster import IN_SERVICE, ClusterClient
from rpc import RpcError, Transport

from .placement import PORTAL_PURPOSE

__all__ = ["Readiness", "ReadinessAnswer", "check_readiness"]


class ReadinessAnswer(msgspec.Struct, kw_only=True, rename="camel"):
    """Body of ``GET /readyz`` (200 when ``ready``, 503 otherwise)."""

    ready: bool
    reason: str
    schedulable_portals: int


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str
    portals: int = 0

    def answer(self) -> ReadinessAnswer:
        return ReadinessAnswer(ready=self.ready, reason=self.reason, schedulable_portals=self.portals)


async def check_readiness(transport: Transport, cluster_name: str, timeout: float) -> Readiness:
    try:
        status = await ClusterClient(transport, cluster_name).readiness(purpose=PORTAL_PURPOSE, timeout=timeout)
    except RpcError as exc:
        return Readiness(False, f"cluster manager {cluster_name!r} unreachable: {exc.code}: {exc.message}")
    except msgspec.ValidationError:
        return Readiness(False, "cluster manager answered readiness without a state")
    if status.state != IN_SERVICE:
        return Readiness(False, f"cluster manager is {status.state} (ready in {status.ready_in} s)")
    schedulable = status.schedulable
    if not schedulable:
        return Readiness(False, "no schedulable portal")
    return Readiness(True, "ok", schedulable)
