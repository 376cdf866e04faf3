"""The docs stand alone: every link in ``README.md`` and ``docs/`` leads to a file of this repository
(or a heading of one), none to a parent directory, another machine or a web page a reader may not
have; every repository path the docs name in backticks exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
#: ``[text](target)`` and ``[label]: target``.
_LINK = re.compile(r"\[[^\]]*\]\((?P<inline>[^)\s]*)[^)]*\)|^\s*\[[^\]]+\]:\s*(?P<ref>\S+)", re.MULTILINE)
#: ``path/with/slash.ext`` in backticks, under a top-level directory of the repository.
_PATH = re.compile(r"`(?P<path>(?:\.\./)*[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]*[A-Za-z0-9_])`")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _targets(text: str) -> list[str]:
    text = _FENCE.sub("", text)
    return [m["inline"] if m["inline"] is not None else m["ref"] for m in _LINK.finditer(text)]


def link_problems(page: Path, text: str) -> list[str]:
    problems = []
    for target in _targets(text):
        path, _, _anchor = target.partition("#")
        if re.match(r"^[a-z][a-z0-9+.-]*:", path, re.IGNORECASE):
            problems.append(f"{target}: leaves the repository")
            continue
        if not path:
            continue  # a heading of the same page
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
    for found in _PATH.finditer(_FENCE.sub("", text)):
        path = found["path"]
        if path.startswith("../"):
            problems.append(f"`{path}`: outside the repository")
        elif (ROOT / path.split("/")[0]).is_dir() and not (ROOT / path.rstrip("/")).exists() \
                and "*" not in path and "{" not in path and "<" not in path:
            problems.append(f"`{path}`: no such file")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_stays_in_the_repository(page: Path) -> None:
    assert link_problems(page, page.read_text()) == []


def test_a_link_outside_is_caught() -> None:
    page = ROOT / "docs" / "operations.md"
    assert link_problems(page, "see [the design](../../shared/DESIGN.md)") == [
        "../../shared/DESIGN.md: outside the repository"]
    assert link_problems(ROOT / "README.md", "[style](../shared/STYLE.md)") == [
        "../shared/STYLE.md: outside the repository"]
    assert link_problems(page, "[OWT](https://github.com/open-webrtc-toolkit/owt-server)")[0].endswith("leaves the repository")
    assert link_problems(page, "[gone](missing.md)") == ["missing.md: no such file"]
    assert link_problems(page, "read `../shared/STYLE.md`") == ["`../shared/STYLE.md`: outside the repository"]
    assert link_problems(page, "see `tests/e2e/no_such_test.py`") == ["`tests/e2e/no_such_test.py`: no such file"]
    assert link_problems(page, "[ok](controller.md#claim) and `tests/e2e/test_races.py`") == []
