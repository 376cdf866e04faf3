"""A real HAProxy (Debian's ``haproxy``, ``make haproxy``) run by a test from a generated configuration."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from pathlib import Path

__all__ = ["HAPROXY", "haproxy_path", "check_config", "HaproxyProcess"]

#: Where Debian's package puts it (``/usr/sbin`` is not on every user's PATH).
HAPROXY = "/usr/sbin/haproxy"


def haproxy_path() -> str | None:
    """The HAProxy binary, or ``None`` when it is not installed."""
    found = shutil.which("haproxy")
    if found:
        return found
    return HAPROXY if Path(HAPROXY).is_file() else None


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``haproxy -c -f path``: HAProxy's own verdict on a configuration."""
    binary = haproxy_path()
    assert binary is not None, "haproxy is not installed: `make haproxy`"
    return subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)


class HaproxyProcess:
    """``haproxy -db -f CONFIG`` in the foreground; :meth:`start` returns once every ``ports`` accepts."""

    def __init__(self, config: Path, ports: list[int], log: Path) -> None:
        self.config = config
        self.ports = ports
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        binary = haproxy_path()
        assert binary is not None, "haproxy is not installed: `make haproxy`"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(self.config)], stdout=out, stderr=subprocess.STDOUT)
        async with asyncio.timeout(timeout):
            for port in self.ports:
                while not await self._accepts(port):
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"haproxy exited: {self.log.read_text()[-2000:]}")
                    await asyncio.sleep(0.05)

    @staticmethod
    async def _accepts(port: int) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
