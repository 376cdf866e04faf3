"""Benchmark: how long the file journal (:mod:`journal.logfile`) takes to open a big directory, from
the index of its newest sealed segment against a scan of every segment.

Builds one directory (``--rooms`` rooms of ``--records`` records of ``--body`` bytes each, no snapshot:
every record stays live; default segments of 8 MiB), closes it, then opens it ``--reps`` times in
each of these ways, interleaved, each in a fresh process (wall and CPU time of ``open()`` only):

- ``index``: this tree, with the index;
- ``scan``: this tree, the indexes moved aside (what opening without one costs: every segment);
- ``base``: with ``--base DIR``, the tree in ``DIR`` (say a worktree of an older commit) on the same
  directory (an older tree ignores the ``.idx`` files).

Run ``python -m bench.journal_open [--base DIR]``; it prints a table (it does not write RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_OPEN = """
import asyncio, json, sys, time
from journal.logfile import FileJournal
async def main():
    journal = FileJournal(sys.argv[1])
    wall, cpu = time.perf_counter(), time.process_time()
    await journal.open()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rooms = len(await journal.rooms())
    indexed = getattr(journal, "indexed", 0)
    await journal.close()
    print(json.dumps({"wall": wall, "cpu": cpu, "rooms": rooms, "indexed": indexed}))
asyncio.run(main())
"""


async def _build(path: Path, rooms: int, records: int, body: bytes) -> None:
    from journal.logfile import FileJournal

    journal = FileJournal(path)
    await journal.open()
    names = [f"room-{n}" for n in range(rooms)]
    for _ in range(records):  # a loop turn of one record per room: one group each
        await asyncio.gather(*(journal.append(name, 1, body) for name in names))
    await journal.close()


def _open(tree: Path, path: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", _OPEN, str(path)], env=env, cwd=tree, check=True,
                         capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--records", type=int, default=2000, help="records per room")
    parser.add_argument("--body", type=int, default=200, help="bytes per record")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--base", type=Path, help="an older tree to open the same directory with")
    parser.add_argument("--dir", type=Path, help="build in (and keep) this directory")
    args = parser.parse_args(argv)

    keep = args.dir is not None
    path = args.dir or Path(tempfile.mkdtemp(prefix="journal-open-")) / "journal.d"
    aside = path.with_name(path.name + ".idx-aside")
    try:
        if not any(path.glob("*.seg")):
            started = time.perf_counter()
            asyncio.run(_build(path, args.rooms, args.records, bytes(args.body)))
            print(f"built {args.rooms} rooms x {args.records} records of {args.body} B in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        segments = sorted(path.glob("*.seg"))
        size = sum(p.stat().st_size for p in segments)
        index_size = sum(p.stat().st_size for p in path.glob("*.idx"))
        print(f"{path}: {len(segments)} segments, {size / 1e6:.1f} MB; index {index_size / 1e6:.1f} MB", flush=True)
        ways = ["index", "scan"] + (["base"] if args.base else [])
        times: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
        for rep in range(args.reps):
            for way in ways:
                if way == "index":
                    result = _open(ROOT, path)
                    assert result["indexed"], "the index was not used"
                else:
                    aside.mkdir(exist_ok=True)
                    for index in path.glob("*.idx"):
                        index.rename(aside / index.name)
                    try:
                        result = _open(ROOT if way == "scan" else args.base, path)
                    finally:
                        for index in aside.glob("*.idx"):
                            index.rename(path / index.name)
                times[way].append(result)
                print(f"rep {rep + 1} {way}: open {result['wall'] * 1000:.0f} ms wall, {result['cpu'] * 1000:.0f} ms CPU",
                      flush=True)
        print("| way | open, wall (median, ms) | CPU (median, ms) | each (wall, ms) |")
        print("|---|---:|---:|---|")
        for way in ways:
            walls = [r["wall"] * 1000 for r in times[way]]
            cpus = [r["cpu"] * 1000 for r in times[way]]
            print(f"| {way} | {statistics.median(walls):.0f} | {statistics.median(cpus):.0f} | "
                  f"{' / '.join(f'{w:.0f}' for w in walls)} |")
    finally:
        shutil.rmtree(aside, ignore_errors=True)
        if not keep:
            shutil.rmtree(path.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
