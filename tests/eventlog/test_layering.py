"""The logger is at the bottom of the layering: it imports no component, and no component imports
``switchboard/`` (the CLI and wiring above them all) to log."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("cluster_manager", "conference_controller", "journal", "portal", "token_api", "rpc", "edge",
              "observability", "scheduler", "credentials", "eventlog")
#: What eventlog may import besides the standard library: escaping of what clients sent.
EVENTLOG_MAY_IMPORT = {"credentials", "msgspec"}


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_eventlog_imports_no_component() -> None:
    project = set(COMPONENTS) | {"switchboard", "bench", "tests"}
    assert _imports("eventlog") & project <= EVENTLOG_MAY_IMPORT


def test_no_component_imports_the_command_line_package() -> None:
    assert {package for package in COMPONENTS if "switchboard" in _imports(package)} == set()
