"""``python -m bench NAME [options]`` runs one scenario; ``python -m bench all`` runs every one."""

from __future__ import annotations

import importlib
import sys

SCENARIOS = {
    "rpc": "bench.rpc",
    "scheduler": "bench.scheduler",
    "relay": "bench.relay",
    "relay-cluster": "bench.relay_cluster",
    "login": "bench.login",
    "relogin": "bench.relogin",
    "memory": "bench.memory",
    "capacity": "bench.capacity",
    "takeover": "bench.takeover",
    "detection": "bench.detection",
    "replay": "bench.replay",
    "holder-replay": "bench.holder_replay",
    "journal-stream": "bench.journal_stream",
    "journal-stream-protocol": "bench.journal_stream_protocol",
    "journal-local": "bench.journal_local",
    "cm-failover": "bench.cm_failover",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        print("scenarios:", ", ".join(SCENARIOS), "| all")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "all":
        worst = 0
        for scenario in SCENARIOS:
            print(f"== {scenario}", flush=True)
            worst = max(worst, importlib.import_module(SCENARIOS[scenario]).main(rest))
        return worst
    if name not in SCENARIOS:
        print(f"unknown scenario {name!r}; choose from: {', '.join(SCENARIOS)}, all", file=sys.stderr)
        return 2
    return int(importlib.import_module(SCENARIOS[name]).main(rest))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
