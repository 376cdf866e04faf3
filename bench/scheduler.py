"""Benchmark: scheduling decisions of the indexed ``scheduler.Scheduler`` against a scan-all baseline.

Both implementations run the same workload in the same process: portal workers with an ISP/region
capacity, new tasks with ISP/region preferences, reservations that count as load and expire on a
simulated clock, and load reports between decisions (untimed).  The baseline in this file scans
every worker on every decision, with the same rules.  The figure is the median time of one
``schedule`` call.  Goal: median ≤ 50 µs per decision at 10,000 workers.

Run ``python -m bench scheduler`` or ``python bench/scheduler.py``; ``--tiny`` runs a very small
size quickly, cross-checks that both implementations make the same ``least-used`` decisions, and
does not write ``bench/RESULTS.md``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # `python bench/scheduler.py`: import the package, not this file
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import argparse
import heapq
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import report
from scheduler import NoWorkerAvailable, Scheduler, SchedulerError

__all__ = ["main", "NaiveScheduler", "run_case", "CaseResult", "write_results"]

GOAL_US = 50.0
GOAL_WORKERS = 10_000
SIZES = (100, 1_000, 10_000)
STRATEGIES = ("least-used", "last-used", "round-robin", "two-choices")
ISPS = ("isp-a", "isp-b", "isp-c", "isp-d")
REGIONS = ("north", "south", "east", "west", "center", "edge")
RESERVE_TIME = 10.0  # seconds, simulated
DECISION_INTERVAL = 0.01  # simulated seconds between decisions: ~1,000 live reservations
LOAD_REPORTS_PER_DECISION = 2
RESERVATION_LOAD = 0.01
MAX_LOAD = 0.85
RESULTS = report.RESULTS


# --------------------------------------------------------------------------- scan-all baseline


@dataclass(eq=False)
class _NaiveWorker:
    id: str
    isps: frozenset[str]
    regions: frozenset[str]
    join_seq: int
    load: float = 0.0
    reserved: int = 0
    max_load: float = MAX_LOAD
    state: str = "available"
    drained: bool = False

    @property
    def effective_load(self) -> float:
        return self.load + self.reserved * RESERVATION_LOAD


@dataclass
class NaiveScheduler:
    """The same rules as ``scheduler.Scheduler`` (ISP/region matcher), scanning every worker."""

    strategy: str
    clock: Callable[[], float]
    rng: random.Random
    workers: dict[str, _NaiveWorker] = field(default_factory=dict)
    tasks: dict[str, tuple[_NaiveWorker, float]] = field(default_factory=dict)
    expiry: list[tuple[float, str]] = field(default_factory=list)
    last: _NaiveWorker | None = None

    def add_worker(self, worker_id: str, info: dict[str, object]) -> None:
        capacity = info["capacity"]
        assert isinstance(capacity, dict)
        self.workers[worker_id] = _NaiveWorker(
            worker_id, frozenset(capacity["isps"]), frozenset(capacity["regions"]), len(self.workers)
        )

    def update_load(self, worker_id: str, load: float) -> None:
        self.workers[worker_id].load = load

    def _expire(self, now: float) -> None:
        while self.expiry and self.expiry[0][0] <= now:
            expires_at, task = heapq.heappop(self.expiry)
            entry = self.tasks.get(task)
            if entry is not None and entry[1] == expires_at:
                del self.tasks[task]
                entry[0].reserved -= 1

    def schedule(self, task: str, preference: dict[str, str] | None, reserve_time: float) -> str:
        now = self.clock()
        self._expire(now)
        known = self.tasks.get(task)
        if known is not None:
            return known[0].id
        isp = preference.get("isp") if preference else None
        region = preference.get("region") if preference else None
        candidates: list[_NaiveWorker] = []
        sweet: list[_NaiveWorker] = []
        servable: list[_NaiveWorker] = []
        servable_sweet: list[_NaiveWorker] = []
        matching = 0
        for w in self.workers.values():
            if isp is not None and w.isps and isp not in w.isps:
                continue
            matching += 1
            if w.state != "available" or w.drained or w.load >= w.max_load:
                continue
            preferred = region in w.regions
            servable.append(w)
            if preferred:
                servable_sweet.append(w)
            if w.effective_load < w.max_load:
                candidates.append(w)
                if preferred:
                    sweet.append(w)
        pool = sweet or candidates or servable_sweet or servable
        if not pool:
            raise NoWorkerAvailable("no worker available" if matching else "no matching worker")
        chosen = self._pick(pool)
        chosen.reserved += 1
        self.tasks[task] = (chosen, now + reserve_time)
        heapq.heappush(self.expiry, (now + reserve_time, task))
        return chosen.id

    def _pick(self, pool: Sequence[_NaiveWorker]) -> _NaiveWorker:
        if self.strategy == "least-used":
            return min(pool, key=lambda w: (w.effective_load, w.join_seq))
        if self.strategy == "last-used":
            if self.last is None or self.last not in pool:
                self.last = pool[0]
            return self.last
        if self.strategy == "round-robin":
            last_seq = self.last.join_seq if self.last is not None else -1
            self.last = next((w for w in pool if w.join_seq > last_seq), pool[0])
            return self.last
        if self.strategy == "two-choices":
            if len(pool) == 1:
                return pool[0]
            a, b = self.rng.sample(pool, 2)
            return b if b.effective_load < a.effective_load else a
        raise ValueError(self.strategy)


# --------------------------------------------------------------------------- workload


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _worker_infos(n: int, rng: random.Random) -> list[tuple[str, dict[str, object]]]:
    infos: list[tuple[str, dict[str, object]]] = []
    for i in range(n):
        isps = [] if rng.random() < 0.2 else [rng.choice(ISPS)]
        regions = [] if rng.random() < 0.1 else [rng.choice(REGIONS)]
        infos.append((f"portal-{i}", {"capacity": {"isps": isps, "regions": regions}, "hostname": f"h{i}"}))
    return infos


def _preferences(count: int, rng: random.Random) -> list[dict[str, str] | None]:
    prefs: list[dict[str, str] | None] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.1:
            prefs.append(None)
        elif roll < 0.2:
            prefs.append({"isp": "isp-unknown", "region": rng.choice(REGIONS)})
        else:
            prefs.append({"isp": rng.choice(ISPS), "region": rng.choice(REGIONS)})
    return prefs


@dataclass
class CaseResult:
    """Timings of one implementation on one (size, strategy) case."""

    decisions: int
    median_us: float
    p99_us: float
    update_us: float
    picks: list[str]


def run_case(implementation: str, workers: int, strategy: str, decisions: int, warmup: int, seed: int = 1) -> CaseResult:
    """Run ``warmup`` untimed then ``decisions`` timed schedule calls on a fresh scheduler."""
    rng = random.Random(seed)
    clock = _Clock()
    sched: Scheduler | NaiveScheduler
    if implementation == "indexed":
        sched = Scheduler(
            "portal",
            strategy,
            clock=clock,
            default_reserve_time=RESERVE_TIME,
            rng=random.Random(seed),
            reservation_load=RESERVATION_LOAD,
            default_max_load=MAX_LOAD,
        )
    else:
        sched = NaiveScheduler(strategy, clock, random.Random(seed))
    infos = _worker_infos(workers, rng)
    for worker_id, info in infos:
        sched.add_worker(worker_id, info)
        sched.update_load(worker_id, rng.uniform(0.0, 0.8))
    ids = [worker_id for worker_id, _ in infos]
    total = warmup + decisions
    prefs = _preferences(total, random.Random(seed + 1))
    report_rng = random.Random(seed + 2)  # separate streams: the workload does not depend on `total`
    reports = [(report_rng.choice(ids), report_rng.uniform(0.0, 0.9)) for _ in range(total * LOAD_REPORTS_PER_DECISION)]
    timings: list[int] = []
    update_timings: list[int] = []
    picks: list[str] = []
    perf = time.perf_counter_ns
    for i in range(total):
        clock.now += DECISION_INTERVAL
        for worker_id, load in reports[i * LOAD_REPORTS_PER_DECISION : (i + 1) * LOAD_REPORTS_PER_DECISION]:
            t0 = perf()
            sched.update_load(worker_id, load)
            update_timings.append(perf() - t0)
        task = f"token-{i}"
        t0 = perf()
        try:
            chosen = sched.schedule(task, prefs[i], RESERVE_TIME)
        except SchedulerError:
            chosen = "-"
        elapsed = perf() - t0
        if i >= warmup:
            timings.append(elapsed)
            picks.append(chosen)
    timings.sort()
    return CaseResult(
        decisions=decisions,
        median_us=statistics.median(timings) / 1000,
        p99_us=timings[min(len(timings) - 1, int(len(timings) * 0.99))] / 1000,
        update_us=statistics.median(update_timings) / 1000,
        picks=picks,
    )


# --------------------------------------------------------------------------- reporting


@dataclass
class _Row:
    workers: int
    strategy: str
    indexed: CaseResult
    naive: CaseResult

    @property
    def ratio(self) -> float:
        return self.naive.median_us / self.indexed.median_us if self.indexed.median_us else float("inf")


def _section(rows: list[_Row], verdict: str, worst: float) -> str:
    lines = [
        "## scheduler",
        "",
        "Median time of one `Scheduler.schedule` decision (indexed `scheduler/`) against a scan-all",
        "baseline with the same rules (`bench/scheduler.py`), same run.",
        "",
        f"- date: {report.today()}",
        f"- commit: {report.git_commit()}",
        f"- machine: {report.machine()}",
        f"- workload: portal purpose; {len(ISPS)} ISPs (20% of workers accept any), {len(REGIONS)} regions;",
        "  preferences {isp, region} (10% none, 10% unlisted ISP); new task per decision, reserved",
        f"  {RESERVE_TIME:g} s on a simulated clock advancing {DECISION_INTERVAL * 1000:g} ms per decision (~1,000 live",
        f"  reservations, {RESERVATION_LOAD} load each); {LOAD_REPORTS_PER_DECISION} load reports per decision (untimed,",
        "  their median cost is the last column)",
        f"- goal: median ≤ {GOAL_US:g} µs per decision at {GOAL_WORKERS:,} workers",
        "",
        "| workers | strategy | indexed median µs | indexed p99 µs | scan-all median µs | ratio | load update µs |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.workers:,} | {r.strategy} | {r.indexed.median_us:.1f} | {r.indexed.p99_us:.1f} | "
            f"{r.naive.median_us:.1f} | {r.ratio:.1f}× | {r.indexed.update_us:.1f} |"
        )
    lines += ["", f"**{verdict}**: worst indexed median at {GOAL_WORKERS:,} workers {worst:.1f} µs (goal ≤ {GOAL_US:g} µs).", ""]
    return "\n".join(lines)


def write_results(path: Path, section: str) -> None:
    """Replace (or append) the ``## scheduler`` section of ``path``, leaving other sections alone."""
    report.write_section("scheduler", section, path)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table; record it in ``bench/RESULTS.md`` unless ``--tiny``."""
    parser = argparse.ArgumentParser(prog="bench scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="one very small size, quick; writes nothing")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], help="comma-separated worker counts")
    parser.add_argument("--decisions", type=int, default=5_000, help="timed decisions per case (indexed)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file to update")
    parser.add_argument("--no-write", action="store_true", help="do not update the results file")
    args = parser.parse_args(argv)

    sizes = args.sizes or ([40] if args.tiny else list(SIZES))
    decisions = 200 if args.tiny else args.decisions
    rows: list[_Row] = []
    print(f"{'workers':>8} {'strategy':<12} {'indexed µs':>11} {'p99 µs':>8} {'scan-all µs':>12} {'ratio':>7} {'update µs':>10}")
    for n in sizes:
        for strategy in STRATEGIES:
            naive_decisions = decisions if args.tiny else max(100, min(decisions, 2_000_000 // n))
            indexed = run_case("indexed", n, strategy, decisions, warmup=decisions // 5)
            naive = run_case("naive", n, strategy, naive_decisions, warmup=decisions // 5)
            row = _Row(n, strategy, indexed, naive)
            rows.append(row)
            print(
                f"{n:>8,} {strategy:<12} {indexed.median_us:>11.1f} {indexed.p99_us:>8.1f} "
                f"{naive.median_us:>12.1f} {row.ratio:>6.1f}× {indexed.update_us:>10.1f}",
                flush=True,
            )
            if strategy == "least-used" and indexed.picks[: naive.decisions] != naive.picks:
                print(f"MISMATCH: indexed and scan-all least-used decisions differ at {n} workers", file=sys.stderr)
                return 1
    at_goal = [r.indexed.median_us for r in rows if r.workers == GOAL_WORKERS]
    if not at_goal:
        print("(goal size not run)")
        return 0
    worst = max(at_goal)
    verdict = "pass" if worst <= GOAL_US else "miss"
    print(f"{verdict}: worst median at {GOAL_WORKERS:,} workers {worst:.1f} µs (goal ≤ {GOAL_US:g} µs)")
    if not args.tiny and not args.no_write:
        write_results(args.results, _section(rows, verdict, worst))
        print(f"recorded in {args.results}")
    return report.exit_status(verdict == "pass", args.tiny, True)


if __name__ == "__main__":
    sys.exit(main())
