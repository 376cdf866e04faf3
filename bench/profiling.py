"""Sampling a server process with py-spy over a measured window, and summarising where time goes.

Optional: needs ``py-spy`` (``pip install py-spy``) and ptrace rights; ``BENCH_PYSPY_NATIVE=1`` adds
C frames (``--native``: shows e.g. the garbage collector inside whatever allocation triggered it).  :func:`sample` records
collapsed stacks (``--format raw``) for ``seconds``; :func:`summary` lists the functions with the
largest share of samples, inclusive (the function or anything it calls) and self (the function's
own code), filtered to the project's packages or to everything.

``python -m bench.profiling FILE [--top 25] [--all]`` prints the summary of a recorded file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

__all__ = ["sample", "summary", "available"]

_OURS = ("portal/", "conference_controller/", "rpc/", "token_api/", "cluster_manager/", "credentials/",
         "scheduler/", "switchboard/", "journal/", "edge/")
#: The checkout the profiled code runs from (a worktree or /work/main): cut from its file names.
_ROOT = str(Path(__file__).resolve().parent.parent) + "/"


def available() -> bool:
    return _py_spy() is not None


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


async def sample(pid: int, seconds: float, out: Path, rate: int = 200) -> asyncio.subprocess.Process:
    """Start py-spy on ``pid`` for ``seconds`` (returns the process; await ``.wait()``)."""
    exe = _py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    return await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
        "--format", "raw", "--output", str(out),
        *(["--native"] if os.environ.get("BENCH_PYSPY_NATIVE") else ["--nonblocking"]),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


def _frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f]


def summary(path: Path, top: int = 25, ours_only: bool = True, per_unit_us: float = 0.0, unit: str = "msg") -> str:
    """Markdown tables of the top functions by inclusive share of samples (the project's, or all) and by self share.

    With ``per_unit_us`` (measured server CPU per message, cycle, …) shares are also turned into µs
    per unit: samples are taken while the process is on CPU, so shares approximate CPU shares.
    """
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = in_gc = 0
    if not path.exists():
        return "(no samples: py-spy wrote nothing)"
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if "_queue_SimpleQueue_get_impl" in stack:  # an idle thread-pool thread (native stacks)
            continue
        frames = [_short(f) for f in _frames(stack)]
        if any(f.startswith("gc_collect_main ") for f in frames):
            in_gc += count
        total += count
        for f in set(frames):
            inclusive[f] += count
        if frames:
            own[frames[-1]] += count
    if not total:
        return "(no samples)"

    def keep(f: str) -> bool:
        return not ours_only or f.split(" ")[-1].startswith(_OURS)

    def cost(n: int) -> str:
        return f" {per_unit_us * n / total:,.0f} |" if per_unit_us else ""

    extra_head = f" µs/{unit} |" if per_unit_us else ""
    extra_rule = "---:|" if per_unit_us else ""
    rows = [f"| inclusive % |{extra_head} self % | function (file) |", f"|---:|{extra_rule}---:|---|"]
    skip = ("cli.py", "__main__.py")
    for f, n in [kv for kv in inclusive.most_common() if keep(kv[0]) and not kv[0].endswith(skip)][:top]:
        rows.append(f"| {100 * n / total:.1f} |{cost(n)} {100 * own[f] / total:.1f} | `{f}` |")
    rows += ["", "Top self time (any code):", "", f"| self % |{extra_head} function (file) |", f"|---:|{extra_rule}---|"]
    for f, n in own.most_common(top):
        rows.append(f"| {100 * n / total:.1f} |{cost(n)} `{f}` |")
    gc_line = (f"\n\nCyclic garbage collector (`gc_collect_main`, native frames): {100 * in_gc / total:.1f} % of the "
               f"samples{cost(in_gc).rstrip(' |') and f', {per_unit_us * in_gc / total:,.0f} µs/{unit}'}." if in_gc else "")
    return "\n".join(rows) + gc_line + f"\n\n({total} samples)"


def section(name: str, path: Path, per_unit_us: float, unit: str, what: str, top: int = 20) -> str:
    """A ``## name`` results section: what was sampled, then :func:`summary`."""
    from bench.report import git_commit, machine, today

    mode = ("`--native`, which pauses the process at every sample: that run is slower, not a result"
            if os.environ.get("BENCH_PYSPY_NATIVE") else "`--nonblocking`")
    return "\n".join([
        f"## {name}",
        "",
        f"py-spy (200 Hz, {mode}) on {what}; {per_unit_us:,.0f} µs of server CPU per {unit} in that run",
        "(`/proc`), shares turned into µs per unit. Inclusive = the function and what it calls; the",
        "project's functions first, then the top self time of any code (`bench/profiling.py`).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        "",
        summary(path, top, True, per_unit_us, unit),
    ])


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` → ``func pkg/mod.py:12`` (line dropped for grouping)."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3.11/", _ROOT):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    where = where.rsplit(":", 1)[0]
    return f"{name} {where}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.profiling", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--all", action="store_true", help="not only the project's functions")
    args = parser.parse_args(argv)
    print(summary(args.file, args.top, not args.all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
