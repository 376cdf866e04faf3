"""Reading a process's CPU time and resident memory from ``/proc`` (no psutil), and process limits.

CPU time is ``utime + stime`` of ``/proc/<pid>/stat`` (clock ticks, usually 10 ms each), so a
measured window should hold at least a few seconds of CPU for the figure to mean anything.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
from collections.abc import Iterable

__all__ = ["cpu_seconds", "rss_bytes", "CpuMeter", "tree", "raise_fd_limit", "free_port", "spawn_ready"]

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process ``pid`` has used so far (its threads included)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (``/proc/<pid>/statm``)."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


class CpuMeter:
    """CPU seconds used by a set of processes between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = list(pids)
        self._begin: dict[int, float] = {}
        self.used: dict[int, float] = {}

    def start(self) -> None:
        self._begin = {pid: cpu_seconds(pid) for pid in self.pids}

    def stop(self, *, gone_ok: bool = False) -> float:
        """Total CPU seconds since :meth:`start`; per process in :attr:`used`.  With ``gone_ok``, a
        process that has exited meanwhile counts for nothing (its CPU can no longer be read) instead
        of failing the measurement."""
        used: dict[int, float] = {}
        for pid in self.pids:
            try:
                used[pid] = cpu_seconds(pid) - self._begin[pid]
            except FileNotFoundError:
                if not gone_ok:
                    raise
        self.used = used
        return sum(used.values())


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (e.g. a broker's start script and the Erlang VM it runs)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1_048_576:
        hard = 1_048_576
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_ready(module: str, args: list[str], what: str) -> subprocess.Popen[str]:
    """``python -m module *args`` from the checkout's root, once it printed ``READY`` on its first
    line (killed, and ``RuntimeError`` naming ``what``, if it printed anything else)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, text=True, cwd=root)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "READY" not in line:
        proc.kill()
        raise RuntimeError(f"{what} did not start: {line!r}")
    return proc
