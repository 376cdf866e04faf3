"""Settings of the cluster manager (the ``cluster_manager`` section of the switchboard configuration)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from observability import ObserveSettings

from scheduler import DEFAULT_STRATEGIES

_Seconds = Annotated[float, msgspec.Meta(ge=0)]
_PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]

__all__ = ["ClusterManagerSettings"]


def _default_strategies() -> dict[str, str]:
    return dict(DEFAULT_STRATEGIES)


class ClusterManagerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the cluster manager serves, watches workers and reserves tasks.  Times are in seconds."""

    #: RPC service name of the cluster manager (OWT: ``owt-cluster``); workers' ``cluster_name``.
    name: Annotated[str, msgspec.Meta(min_length=1)] = "cluster"
    #: After a start with no state ("freshman"), ``schedule`` answers ``not_ready`` for this long so
    #: that workers can rejoin and re-report their tasks (OWT toml: 6 s).
    initial_time: _Seconds = 6.0
    #: Period of the liveness sweep (OWT: 1 s).
    check_alive_interval: _PositiveSeconds = 1.0
    #: A worker is removed when the sweeps it missed in a row EXCEED this (OWT toml: 3).
    check_alive_count: Annotated[int, msgspec.Meta(ge=0)] = 3
    #: Reserve time of ``schedule`` calls that pass none, and of tasks picked up without a
    #: reservation (OWT: 60 s, miswired there).
    schedule_reserve_time: _PositiveSeconds = 60.0
    #: Scheduling strategy per purpose; purposes not listed use the scheduler's default for them.
    strategies: dict[str, str] = msgspec.field(default_factory=_default_strategies)
    #: ``max_load`` of workers whose info declares none (OWT portal and agent configs: 0.85).
    default_max_load: Annotated[float, msgspec.Meta(gt=0)] = 0.85
    #: Purposes whose tasks are rooms rebuilt from a journal: when such a worker is lost, each of its
    #: tasks is scheduled on a live worker of the purpose and handed to it (``take_over``).
    failover_purposes: list[str] = msgspec.field(default_factory=lambda: ["conference"])
    #: Tasks of one lost worker handed over at once (each a ``take_over`` call in flight).
    failover_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 16
    #: Attempts per task of that hand-over, ``failover_interval`` seconds apart; each ``take_over``
    #: call waits at most ``failover_timeout`` seconds.
    failover_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    failover_interval: _PositiveSeconds = 0.5
    failover_timeout: _PositiveSeconds = 10.0
    #: Learn at once that a worker's connection closed: on RabbitMQ through the broker's event
    #: exchange (plugin ``rabbitmq_event_exchange``; without it, only the keepalive sweep notices).
    detect_departures: bool = True
    #: A departed worker is declared dead this long after the broker said so, unless the manager
    #: lost the broker itself in between (a broker shutting down closes every connection).
    departure_settle: Annotated[float, msgspec.Meta(ge=0, le=5)] = 0.25
    #: After the manager lost the broker and got it back, the sweeps count nothing for this long:
    #: every worker has this much time to report again before any missed sweep counts.
    reconnect_grace: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0
    #: How long the manager waits for the ``exit.quit`` event to be published, per event.
    event_publish_timeout: _PositiveSeconds = 2.0
    #: Publish every change of the registry (event ``cluster.<name>.changes``) for standbys.
    replication: bool = False
    #: Changes waiting to be published, at most; beyond, the oldest are dropped (standbys resync).
    replication_buffer: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    #: Changes per published batch, at most.
    replication_batch: Annotated[int, msgspec.Meta(ge=1)] = 512
    #: A standby waits at most this long for the active manager's snapshot, and retries after
    #: ``replication_retry_interval``.
    replication_snapshot_timeout: _PositiveSeconds = 5.0
    replication_retry_interval: _PositiveSeconds = 0.5
    #: Batches a standby holds ahead of a gap in the sequence before it takes a new snapshot.
    replication_pending: Annotated[int, msgspec.Meta(ge=1)] = 64
    #: With standbys (``switchboard cluster-manager`` processes sharing ``name``): the active one
    #: sends itself a tick through the queue this often, and each tick renews its lease of
    #: ``leader_lease`` seconds; a leader whose lease ran out (it was frozen) declines requests and
    #: steps down.  The lease must be shorter than the broker's takeover time (2–3 × ``rpc.heartbeat``)
    #: and the tick interval than the lease: settings that break either are refused at start.
    leader_tick_interval: _PositiveSeconds = 0.25
    leader_lease: _PositiveSeconds = 1.0
    #: The fault timeline (admin method ``faults``, the status page): faults kept in memory, at most;
    #: the oldest are dropped first.
    fault_log_size: Annotated[int, msgspec.Meta(ge=1)] = 1000
    #: A worker removed as lost (keepalives stopped, connection closed) is still shown as ``lost`` by
    #: the admin method ``overview`` for this many seconds, at most ``lost_worker_limit`` of them.
    lost_worker_retention: _Seconds = 300.0
    lost_worker_limit: Annotated[int, msgspec.Meta(ge=0)] = 1000
    #: With standbys: each standby announces itself this often (event ``cluster.<name>.standbys``),
    #: and one not heard from for ``standby_expiry`` seconds is no longer listed by ``overview``.
    standby_announce_interval: _PositiveSeconds = 1.0
    standby_expiry: _PositiveSeconds = 5.0
    #: Standbys listed at most (the one heard from longest ago is forgotten first).
    standby_limit: Annotated[int, msgspec.Meta(ge=1)] = 16
    #: Its own ``/metrics``, ``/healthz`` and ``/readyz`` port (``switchboard cluster-manager`` processes only;
    #: docs/operations.md, "Health and metrics").
    observe: ObserveSettings = msgspec.field(default_factory=ObserveSettings)
