"""The test watchdog (``tests/support/watchdog.py``) on real pytest runs in a subprocess: a test that
swallows pytest-timeout's failure and keeps hanging is interrupted with every thread's stack, the
session reports it; a main thread that ignores even the interrupt is ended; a test within its
limit is left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.watchdog import EXIT_STATUS, limit_for

ROOT = Path(__file__).resolve().parents[1]

_SWALLOWS_THE_TIMEOUT = '''
import time
import pytest

@pytest.mark.timeout(1)
def test_hangs_past_its_timeout():
    try:
        time.sleep(60)
    except BaseException:  # pytest-timeout's failure, swallowed the way some libraries do
        pass
    time.sleep(60)

def test_after():
    pass
'''

_IGNORES_EVEN_THE_INTERRUPT = '''
import time
import pytest

@pytest.mark.timeout(1)
def test_hangs_for_good():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            time.sleep(60)
        except BaseException:
            pass
'''

_QUICK = '''
import time
import pytest

@pytest.mark.timeout(1)
def test_quick():
    time.sleep(0.1)
'''


def _run(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_subject.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.watchdog", "-p", "no:cacheprovider",
         "-o", "watchdog_factor=1", "-o", "watchdog_grace=2", "test_subject.py"],
        cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=50)


def test_a_test_that_swallows_its_timeout_is_interrupted_with_its_stacks_and_the_session_reports(
        tmp_path: Path) -> None:
    done = _run(tmp_path, _SWALLOWS_THE_TIMEOUT)
    output = done.stdout + done.stderr
    assert "watchdog: test_subject.py::test_hangs_past_its_timeout still running after 3 s" in output, output
    assert "test_subject.py\", line 11 in test_hangs_past_its_timeout" in output, output  # where it hung
    assert "KeyboardInterrupt" in output, output
    assert done.returncode == 2, output  # pytest's "interrupted", not the watchdog's own exit
    assert "test_after" not in output.split("watchdog:")[0]


def test_a_main_thread_that_ignores_the_interrupt_is_ended(tmp_path: Path) -> None:
    done = _run(tmp_path, _IGNORES_EVEN_THE_INTERRUPT)
    output = done.stdout + done.stderr
    assert "did not stop 2 s after the interrupt; ending" in output, output
    assert done.returncode == EXIT_STATUS, output


def test_a_test_within_its_limit_is_left_alone(tmp_path: Path) -> None:
    done = _run(tmp_path, _QUICK)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "watchdog" not in done.stdout + done.stderr


def test_the_limit_follows_the_timeout() -> None:
    assert limit_for(120) == 120 * 1.5 + 120
    assert limit_for(10, factor=2, grace=5) == 25
    assert limit_for(None) is None and limit_for(0) is None
