"""Faults told to the operators: one fault schema, grouping, sinks (Slack-format webhook, generic
JSON webhook, the log) with bounded retries, and dead letters (docs/operations.md, *Alerts*).

Sources report a :class:`Fault` where it is decided (:class:`FaultReporter`); one
:class:`AlertService` per cluster (a single-active service on the cluster managers' processes, or in
the embedded server) groups them, delivers them and keeps what still fails in a dead-letter store.
"""

from .deadletters import DeadLetter, DeadLetterStore, LocalDeadLetters
from .faults import Fault, alerts_service_name
from .grouping import Alert, Grouper
from .reporter import FaultReporter
from .service import AlertService
from .settings import AlertSettings, DeadLetterSettings, SinkSettings

__all__ = [
    "Alert", "AlertService", "AlertSettings", "DeadLetter", "DeadLetterSettings", "DeadLetterStore", "Fault",
    "FaultReporter", "Grouper", "LocalDeadLetters", "SinkSettings", "alerts_service_name",
]
