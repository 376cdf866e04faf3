"""The fault event: what every source sends and the alert service receives (one schema, msgspec)."""

from __future__ import annotations

import time
from typing import Literal

import msgspec

__all__ = ["Fault", "FaultKind", "Severity", "alerts_service_name", "encode_fault", "decode_fault"]

FaultKind = Literal[
    "worker_lost",        # the active cluster manager removed a worker that did not quit
    "failover",           # the rooms of a lost controller were handed over (moved / failed)
    "manager_failover",   # a standby cluster manager became the active one
    "broker_lost",        # the alert service's process lost the broker
    "broker_back",        # ... and has it back
    "dead_letter",        # something was given up after its retries and kept as a dead letter
    "component_restarted",  # the local-cluster supervisor restarted a role process
    "handler_failed",     # an RPC handler raised an unexpected exception
]
Severity = Literal["info", "warning", "error"]


class Fault(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    kind: FaultKind
    #: One line for a human.
    summary: str
    severity: Severity = "warning"
    #: What the fault is about (a worker id, a service.method, a role name).
    subject: str = ""
    #: Faults with the same group within the grouping window go out as one alert; empty: the
    #: group is ``kind:subject``.
    group: str = ""
    #: Who raised it (a node id).
    source: str = ""
    #: Wall clock, seconds since the epoch.
    at: float = msgspec.field(default_factory=time.time)
    #: Small facts for the generic JSON sink (counts, reasons).
    details: dict[str, str | int | float | bool | None] = msgspec.field(default_factory=dict)

    @property
    def group_key(self) -> str:
        return self.group or f"{self.kind}:{self.subject}"


def alerts_service_name(cluster: str) -> str:
    """The RPC service of the alert service of cluster ``cluster``."""
    return f"{cluster}.alerts"


def encode_fault(fault: Fault) -> dict[str, object]:
    return msgspec.to_builtins(fault)  # type: ignore[no-any-return]


def decode_fault(data: object) -> Fault:
    """:raises msgspec.ValidationError: not a fault."""
    return msgspec.convert(data, Fault)
