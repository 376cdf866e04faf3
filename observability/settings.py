"""Settings of a component's observability port (sub-section ``observe`` of its own section)."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["ObserveSettings"]


class ObserveSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Port of ``/metrics``, ``/healthz`` and ``/readyz`` (0: no such port).  Several processes of
    #: one role on one host need a port each.
    port: Annotated[int, msgspec.Meta(ge=0, lt=65536)] = 0
    #: Address it binds: loopback unless set explicitly (metrics name rooms' counts and worker ids;
    #: put them behind whatever scrapes them, not on a public address).
    host: str = "127.0.0.1"
