"""The software version a worker declares when it joins (``info.version``, shown on the status page)."""

from __future__ import annotations

from functools import cache
from importlib import metadata

__all__ = ["software_version"]


@cache
def software_version() -> str:
    """The installed ``switchboard`` distribution's version, or ``"unknown"`` when it is not installed."""
    try:
        return metadata.version("switchboard")
    except metadata.PackageNotFoundError:
        return "unknown"
