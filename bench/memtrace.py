"""The embedded server with ``tracemalloc`` on, for finding what holds memory per participant.

``python -m bench.memtrace --api-port P --portal-port Q --out FILE`` runs what ``switchboard up``
runs (:class:`switchboard.wiring.EmbeddedCluster`, uvloop, settings from ``SWITCHBOARD_*``) with
``tracemalloc`` tracing 8 frames.  On ``SIGUSR1`` it writes the live allocations, grouped by the
first frame inside the project or a library (file:line), to ``FILE`` as JSON lines
``{"site", "size", "count"}`` followed by a ``{"total"}`` line; :func:`diff` compares two such dumps.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import tracemalloc
from pathlib import Path

__all__ = ["diff", "main"]


def _dump(out: Path) -> None:
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    ])
    stats = snapshot.statistics("traceback")
    sites: dict[str, list[int]] = {}
    total = 0
    for stat in stats:
        total += stat.size
        site = _site(stat.traceback)
        entry = sites.setdefault(site, [0, 0])
        entry[0] += stat.size
        entry[1] += stat.count
    tmp = out.with_suffix(".tmp")
    with tmp.open("w") as f:
        for site, (size, count) in sorted(sites.items(), key=lambda kv: -kv[1][0]):
            f.write(json.dumps({"site": site, "size": size, "count": count}) + "\n")
        f.write(json.dumps({"total": total}) + "\n")
    tmp.rename(out)


def _site(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame in the project, else the innermost frame (most recent call last)."""
    # Oldest frame first (Python ≥ 3.7): walk from the most recent call outwards.
    frames = list(traceback)[::-1]
    ours = ("/portal/", "/conference_controller/", "/rpc/", "/token_api/", "/cluster_manager/", "/credentials/",
            "/switchboard/")
    inner = frames[0]
    inner_txt = f"{_short(inner.filename)}:{inner.lineno}"
    for frame in frames:
        if any(part in frame.filename for part in ours) and "/site-packages/" not in frame.filename:
            here = f"{_short(frame.filename)}:{frame.lineno}"
            return here if frame is inner else f"{here} → {inner_txt}"
    # No project frame within the traced depth: name the outermost library frame seen, then the innermost.
    outer = frames[-1]
    return f"{_short(outer.filename)}:{outer.lineno} … {inner_txt}"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def load(path: Path) -> tuple[dict[str, tuple[int, int]], int]:
    sites: dict[str, tuple[int, int]] = {}
    total = 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "total" in row:
            total = row["total"]
        else:
            sites[row["site"]] = (row["size"], row["count"])
    return sites, total


def diff(before: Path, after: Path, participants: int, top: int = 20) -> str:
    """Markdown: the sites whose live memory grew most between the dumps, in bytes per participant."""
    a, total_a = load(before)
    b, total_b = load(after)
    grown = sorted(((site, b[site][0] - a.get(site, (0, 0))[0], b[site][1] - a.get(site, (0, 0))[1]) for site in b),
                   key=lambda x: -x[1])
    n = max(participants, 1)
    rows = [f"Traced Python heap growth: {(total_b - total_a) / n / 1024:.1f} KB per participant "
            f"({participants:,} participants).", "",
            "| bytes/participant | blocks/participant | allocation site (project frame → innermost frame) |",
            "|---:|---:|---|"]
    for site, size, count in grown[:top]:
        rows.append(f"| {size / n:,.0f} | {count / n:.1f} | `{site}` |")
    # By who asked: the project package on the stack if any, else the package of the innermost frame.
    by_pkg: dict[str, int] = {}
    for site, size, _ in grown:
        first = site.split(" ")[0]
        pkg = first.split("/")[0] if not first.startswith("<") else "(startup frames)"
        if any(marker in site for marker in (" → ", " … ")):
            inner = site.rsplit(" ", 1)[-1]
            if not first.startswith(_PROJECT):
                pkg = inner.split("/")[0]
        by_pkg[pkg] = by_pkg.get(pkg, 0) + size
    rows += ["", "| bytes/participant | allocated by (project package on the stack, else innermost package) |",
             "|---:|---|"]
    for pkg, size in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:12]:
        rows.append(f"| {size / n:,.0f} | {pkg} |")
    return "\n".join(rows)


_PROJECT = ("portal/", "conference_controller/", "rpc/", "token_api/", "cluster_manager/", "credentials/", "switchboard/")


async def _serve(api_port: int, portal_port: int, out: Path) -> None:
    from switchboard.config import load_settings
    from eventlog import configure_logging
    from switchboard.wiring import EmbeddedCluster

    settings = load_settings(None, overrides={"token_api": {"host": "127.0.0.1", "port": api_port},
                                              "portal": {"host": "127.0.0.1", "port": portal_port}})
    configure_logging(settings.log.level, json_lines=settings.log.json)
    cluster = EmbeddedCluster(settings)
    await cluster.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, lambda: _dump(out))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("switchboard (embedded, tracemalloc) is up", flush=True)
    try:
        await stop.wait()
    finally:
        await cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.memtrace", description=__doc__.splitlines()[0])
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--portal-port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from bench.proc import raise_fd_limit

    raise_fd_limit()
    tracemalloc.start(8)
    import uvloop

    uvloop.run(_serve(args.api_port, args.portal_port, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
