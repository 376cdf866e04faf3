"""Errors of the cluster manager, as callers see them: ``ServiceError(code, message)``.

Callers receive them as :class:`rpc.RpcRemoteError` with the same ``code``.  Scheduler errors keep
their codes (``no_worker_available``, ``no_matching_worker``, ``unknown_worker``, ``unknown_task``,
``already_claimed``, ``expired``, ``wrong_worker``); the scheduler's ``invalid_argument`` becomes
``bad_arguments`` like every other argument error.
"""

from __future__ import annotations

from rpc import ServiceError
from rpc.errors import BAD_ARGUMENTS
from scheduler import InvalidArgument, SchedulerError

__all__ = [
    "NOT_READY",
    "BAD_ARGUMENTS",
    "UNKNOWN_WORKER",
    "NO_WORKER_AVAILABLE",
    "not_ready",
    "bad_arguments",
    "unknown_worker",
    "no_worker_available",
    "unauthorized",
    "from_scheduler_error",
    "not_replicating",
]

NOT_READY = "not_ready"
UNKNOWN_WORKER = "unknown_worker"
NO_WORKER_AVAILABLE = "no_worker_available"
UNAUTHORIZED = "unauthorized"
NOT_REPLICATING = "not_replicating"


def not_ready(remaining: float) -> ServiceError:
    """The manager is in its freshman window and cannot place new tasks yet."""
    return ServiceError(
        NOT_READY,
        f"cluster manager is not ready: workers are re-registering after a restart (about {remaining:.1f} s left)",
    )


def bad_arguments(method: str, detail: str) -> ServiceError:
    """An argument of ``method`` has the wrong type or value; nothing was changed."""
    return ServiceError(BAD_ARGUMENTS, f"{method}: {detail}")


def unknown_worker(worker_id: str, purpose: str | None = None) -> ServiceError:
    """No worker ``worker_id`` is registered (of ``purpose``, when given)."""
    if purpose is None:
        return ServiceError(UNKNOWN_WORKER, f"worker {worker_id!r} does not exist")
    return ServiceError(UNKNOWN_WORKER, f"worker {worker_id!r} is not a registered {purpose} worker")


def no_worker_available(purpose: str) -> ServiceError:
    """Nothing of ``purpose`` has ever joined (there is no scheduler for it)."""
    return ServiceError(NO_WORKER_AVAILABLE, f"no {purpose} worker is registered")


def unauthorized() -> ServiceError:
    """An admin call without a valid admin key; nothing was read or changed."""
    return ServiceError(UNAUTHORIZED, "admin calls need a valid admin key (keys.admin_keys)")


def not_replicating(name: str) -> ServiceError:
    """A standby asked for a snapshot of a manager that does not publish its changes."""
    return ServiceError(NOT_REPLICATING, f"cluster manager {name} does not publish its changes (replication is off)")


def from_scheduler_error(method: str, exc: SchedulerError) -> ServiceError:
    """The RPC error for a scheduler failure, with the scheduler's code and message."""
    if isinstance(exc, InvalidArgument):
        return bad_arguments(method, exc.message)
    return ServiceError(exc.code, exc.message)
