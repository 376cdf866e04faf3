"""What ``/readyz`` answers: ready or not, why not, and what the component says about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Readiness"]


@dataclass(frozen=True)
class Readiness:
    ready: bool
    #: Why it is not ready (empty when it is).
    reason: str = ""
    #: More to say either way (a cluster manager: whether it is the active one).
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def not_ready(cls, reason: str, **details: Any) -> Readiness:
        return cls(False, reason, details)

    @classmethod
    def serving(cls, **details: Any) -> Readiness:
        return cls(True, "", details)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ready": self.ready, "status": "ready" if self.ready else "not_ready", **self.details}
        if self.reason:
            body["reason"] = self.reason
        return body

    @property
    def status_code(self) -> int:
        return 200 if self.ready else 503
