"""Where a takeover's time goes, read from the servers' JSON logs (``bench takeover --breakdown``).

Per room of the lost controller, the moments (ms after the bench received ``exit.quit``) of each
step, as the processes logged them: the cluster manager removed the worker; the new controller
started rebuilding the room (``room_recovered`` minus its own durations), read the newest snapshot,
read the records after it, claimed a new epoch, committed the takeover; the manager's ``take_over``
call returned (``failed_over``); the portal heard of the loss (``controller_lost``); the portal
re-attached the room's first and last socket (``reattached``, one per socket); and the bench saw
the room's first and last client served again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import median

__all__ = ["STEPS", "RoomTimeline", "read_logs", "timelines", "table"]

#: (key, description) of every step, in the order they happen.
STEPS: tuple[tuple[str, str], ...] = (
    ("removed", "manager removed the lost controller"),
    ("portal_told", "portal got `exit.quit`"),
    ("rebuild_start", "new controller starts the rebuild"),
    ("snapshot_read", "newest snapshot read"),
    ("records_read", "records after it read"),
    ("claimed", "new epoch claimed"),
    ("recovered", "takeover committed (room served)"),
    ("take_over_returned", "manager's `take_over` returned"),
    ("first_reattached", "first socket re-attached by the portal"),
    ("last_reattached", "last socket re-attached by the portal"),
    ("first_served", "first client served again"),
    ("last_served", "last client served again"),
)


@dataclass(slots=True)
class RoomTimeline:
    """The moments (seconds, the bench's monotonic clock) of one room's takeover steps."""

    room: str
    at: dict[str, float] = field(default_factory=dict)

    def offsets(self, zero: float) -> dict[str, float]:
        return {key: (value - zero) * 1000 for key, value in self.at.items()}


def read_logs(workdir: Path) -> list[dict[str, Any]]:
    """Every JSON log line of every process in ``workdir``, with the process's role as ``role``."""
    lines: list[dict[str, Any]] = []
    for path in sorted(workdir.glob("*.log")):
        for raw in path.read_text(errors="replace").splitlines():
            if not raw.startswith("{"):
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and isinstance(line.get("ts"), (int, float)):
                line["role"] = path.stem
                lines.append(line)
    return lines


def _event(line: dict[str, Any]) -> str:
    return str(line.get("event", "")).split(" ", 1)[0]


def timelines(lines: Iterable[dict[str, Any]], lost: str, rooms: Sequence[str], wall_to_mono: float,
              served: dict[str, list[float]], since: float) -> list[RoomTimeline]:
    """One timeline per room of ``rooms`` (held by the ``lost`` controller); ``wall_to_mono`` turns a
    log's wall-clock ``ts`` into the bench's monotonic clock; ``served``: per room, when each client was;
    lines logged before ``since`` (the kill) are left out."""
    result = {room: RoomTimeline(room) for room in rooms}

    def mark(room: str | None, key: str, ts: float, keep: str = "first") -> None:
        if room not in result:
            return
        at = result[room].at
        moment = ts + wall_to_mono
        if key not in at or (keep == "first" and moment < at[key]) or (keep == "last" and moment > at[key]):
            at[key] = moment

    for line in lines:
        event, ts, role = _event(line), float(line["ts"]), line["role"]
        if ts + wall_to_mono < since - 0.002:  # the log's ts is rounded to the millisecond
            continue
        if event == "worker_removed" and line.get("worker_id") == lost:
            for room in rooms:
                mark(room, "removed", ts)
        elif event == "controller_lost" and line.get("controller") == lost:
            for room in rooms:
                mark(room, "portal_told", ts)
        elif event == "room_recovered" and role.startswith("controller"):
            recovered = line.get("room")
            steps = [float(line.get(k, 0.0)) / 1000 for k in
                     ("snapshot_ms", "records_ms", "apply_ms", "claim_ms", "commit_ms")]
            start = ts - sum(steps)
            mark(recovered, "rebuild_start", start)
            mark(recovered, "snapshot_read", start + steps[0])
            mark(recovered, "records_read", start + steps[0] + steps[1])
            mark(recovered, "claimed", start + sum(steps[:4]))
            mark(recovered, "recovered", ts)
        elif event == "failed_over" and role == "cluster-manager" and line.get("lost") == lost:
            mark(line.get("task"), "take_over_returned", ts)
        elif event == "reattached" and role.startswith("portal"):
            mark(line.get("room"), "first_reattached", ts)
            mark(line.get("room"), "last_reattached", ts, keep="last")
    for room, times in served.items():
        if room in result and times:
            result[room].at["first_served"] = min(times)
            result[room].at["last_served"] = max(times)
    return list(result.values())


def table(rooms: Sequence[tuple[float, RoomTimeline]]) -> list[str]:
    """Markdown rows: each step's median and max over the rooms, ms after ``exit.quit`` reached the bench."""
    rows = ["| step | median ms | max ms | rooms |", "|---|---:|---:|---:|"]
    offsets = [timeline.offsets(zero) for zero, timeline in rooms]
    for key, text in STEPS:
        values = [o[key] for o in offsets if key in o]
        if values:
            rows.append(f"| {text} | {median(values):.0f} | {max(values):.0f} | {len(values)} |")
    return rows
