"""The command-line options the benchmark scenarios share (``python -m bench NAME [options]``).

Every scenario's own defaults and help texts stay with the scenario: :func:`add_run_options` adds
only the options it is given a default (or a help text) for, always in the same order, then
``--tiny``; :func:`parse_options` checks ``--reps`` and puts the scenario's ``--tiny`` sizes in place.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["scenario_parser", "add_run_options", "parse_options", "HIDDEN", "THROWAWAY_BROKER", "PROFILE_ONCE"]

#: ``--broker`` accepted but not shown (scenarios that need no broker take it for ``bench all``).
HIDDEN = argparse.SUPPRESS
#: The ``--broker`` help of scenarios that start a RabbitMQ node when none is given.
THROWAWAY_BROKER = "amqp:// URL (default: start a throwaway node)"
#: The ``--profile`` help of scenarios that profile one extra run.
PROFILE_ONCE = "also run once under py-spy, collapsed stacks to this file"


def scenario_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``bench NAME``, described by the first line of the scenario's docstring."""
    return argparse.ArgumentParser(prog=f"bench {name}", description=doc.splitlines()[0])


def add_run_options(parser: argparse.ArgumentParser, *, procs: int | None = None, reps: int | None = None,
                    reps_help: str | None = None, warmup: float | None = None, duration: float | None = None,
                    broker: str | None = None, profile: str | None = None, profile_metavar: str | None = None) -> None:
    """``--procs``, ``--reps``, ``--warmup``, ``--duration`` (with these defaults), ``--broker`` and ``--profile``
    (with these help texts), each only when given, then ``--tiny``."""
    if procs is not None:
        parser.add_argument("--procs", type=int, default=procs, help="load-generator processes")
    if reps is not None:
        parser.add_argument("--reps", type=int, default=reps, help=reps_help)
    if warmup is not None:
        parser.add_argument("--warmup", type=float, default=warmup)
    if duration is not None:
        parser.add_argument("--duration", type=float, default=duration)
    if broker is not None:
        parser.add_argument("--broker", default="", help=broker)
    if profile is not None:
        parser.add_argument("--profile", type=Path, metavar=profile_metavar, help=profile)
    parser.add_argument("--tiny", action="store_true", help="a very short run that records nothing")


def parse_options(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                  tiny: Mapping[str, object]) -> argparse.Namespace:
    """``argv`` parsed; ``--reps`` (where there is one) at least 1; with ``--tiny``, the ``tiny`` values set."""
    args = parser.parse_args(argv)
    if getattr(args, "reps", 1) < 1:
        parser.error("--reps must be at least 1")
    if args.tiny:
        for name, value in tiny.items():
            setattr(args, name, value)
    return args
