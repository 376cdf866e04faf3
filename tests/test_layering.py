"""The layering drawn in ``docs/architecture.md`` (*Layering*) is the one the imports have: each
package imports only packages of the layers below its own (and, within a layer, only the pairs
listed), so the components never import each other nor the command-line package above them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Bottom to top, as ``docs/architecture.md`` draws them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("credentials", "scheduler"),  # pure: no project package
    ("eventlog",),  # the logger of every component
    ("background", "rpc", "contracts"),  # background tasks, messaging, the wire contract of each service
    ("edge", "observability", "journal", "alerts"),  # what the components are built on
    ("webhooks",),
    ("cluster_manager", "token_api", "portal", "conference_controller"),  # the components
    ("switchboard",),  # CLI, settings, wiring
    ("bench",),
)
#: Imports allowed within a layer: the transports own their tasks through ``background``; the
#: contracts' clients call through ``rpc``, and its worker client speaks the cluster contract.
WITHIN_A_LAYER = {("rpc", "background"), ("rpc", "contracts"), ("contracts", "rpc")}
PROJECT = {package for layer in LAYERS for package in layer}


def _imports(package: str) -> set[str]:
    """The project packages ``package`` imports (at any depth of its modules, at any place in them)."""
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return (found & (PROJECT | {"tests"})) - {package}


def _forbidden() -> dict[str, set[str]]:
    wrong: dict[str, set[str]] = {}
    for level, layer in enumerate(LAYERS):
        below = {package for lower in LAYERS[:level] for package in lower}
        for package in layer:
            bad = {imported for imported in _imports(package)
                   if imported not in below and (package, imported) not in WITHIN_A_LAYER}
            if bad:
                wrong[package] = bad
    return wrong


def test_every_top_level_package_has_its_layer() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == PROJECT


def test_each_package_imports_only_the_layers_below_it() -> None:
    assert _forbidden() == {}


def test_no_component_imports_the_command_line_package_or_another_component() -> None:
    components = set(LAYERS[5])
    assert {package: _imports(package) & (components | {"switchboard"})
            for package in components if _imports(package) & (components | {"switchboard"})} == {}
