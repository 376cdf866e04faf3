"""Typed scheduler errors.

Every failure of the scheduler is a :class:`SchedulerError` with a stable ``code`` (suitable for an
RPC error code) and a readable ``message``.  The cluster manager maps them onto its RPC errors.
"""

from __future__ import annotations

__all__ = [
    "SchedulerError",
    "NoWorkerAvailable",
    "NoMatchingWorker",
    "UnknownWorker",
    "UnknownTask",
    "TaskNotReserved",
    "TaskAlreadyClaimed",
    "TaskExpired",
    "TaskOnOtherWorker",
    "UnknownStrategy",
    "InvalidArgument",
]


class SchedulerError(Exception):
    """Root of every error raised by :mod:`scheduler`."""

    code: str = "scheduler_error"

    def __init__(self, message: str = "") -> None:
        self.message = message or self.code
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class NoWorkerAvailable(SchedulerError):
    """There is no worker at all, or every matching worker is full, unavailable or drained."""

    code = "no_worker_available"


class NoMatchingWorker(SchedulerError):
    """Workers exist, but the hard filter (ISP, codec, algorithm) rejects every one of them."""

    code = "no_matching_worker"


class UnknownWorker(SchedulerError, KeyError):
    """The worker id is not registered with this scheduler."""

    code = "unknown_worker"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class UnknownTask(SchedulerError):
    """The task has no reservation (never scheduled, repealed, or forgotten long ago)."""

    code = "unknown_task"


#: The name the cluster manager's brief uses for "claim of a task that is not reserved".
TaskNotReserved = UnknownTask


class TaskAlreadyClaimed(SchedulerError):
    """The task is already executing: a claim is single-use."""

    code = "already_claimed"


class TaskExpired(SchedulerError):
    """The task's reservation lapsed before it was claimed."""

    code = "expired"


class TaskOnOtherWorker(SchedulerError):
    """The task is reserved on a different worker than the one that claims it."""

    code = "wrong_worker"


class UnknownStrategy(SchedulerError, ValueError):
    """A strategy name that :func:`scheduler.create_strategy` does not know."""

    code = "unknown_strategy"


class InvalidArgument(SchedulerError, ValueError):
    """An argument that cannot be used (a NaN load, a non-string id, ...)."""

    code = "invalid_argument"
