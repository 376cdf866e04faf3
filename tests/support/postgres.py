"""A throwaway PostgreSQL server on loopback for tests: Debian's ``postgresql`` binaries, its own
data directory in a temporary folder, a free port, a random password.

PostgreSQL refuses to run as root; when the tests run as root (CI does) the server runs as the
``postgres`` system user the Debian package creates (``setpriv``, which execs in place, so the
child process is the postmaster itself and stops with it).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.processes import free_port

__all__ = ["PostgresNode", "postgres_bin_dir"]

_USER = "switchboard"


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with a server in it, if any."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    numbered = [p for p in found if p.parent.name.isdigit()]
    return max(numbered, key=lambda p: int(p.parent.name)) if numbered else None


def _open_to_others(path: Path) -> bool:
    """Whether every directory from ``/`` to ``path`` lets other users through."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


class PostgresNode:
    """One server: ``start()``, ``stop()``, ``close()``; :meth:`dsn` for clients."""

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed: run `make test` (apt-get install postgresql)")
        self.bin = bin_dir
        root = os.geteuid() == 0
        # As root the server runs as `postgres`, which must reach the directory: under /tmp unless
        # the usual temporary directory is open to others.
        parent = tempfile.gettempdir() if not root or _open_to_others(Path(tempfile.gettempdir())) else "/tmp"
        self.base = Path(tempfile.mkdtemp(prefix="switchboard-pg-", dir=parent))
        self.data = self.base / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if root:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no `postgres` user to run PostgreSQL as") from None
            self._as = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--"]
            os.chown(self.base, account.pw_uid, account.pw_gid)
        self._initdb()

    def _run(self, argv: Sequence[str]) -> None:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=self.start_timeout,
                              cwd=self.base, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def _initdb(self) -> None:
        password_file = self.base / "password"
        password_file.write_text(self.password + "\n")
        if self._as:
            account = pwd.getpwnam("postgres")
            os.chown(password_file, account.pw_uid, account.pw_gid)
        password_file.chmod(0o600)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", _USER, f"--pwfile={password_file}",
                   "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"])
        password_file.unlink()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with ``psql`` (no event loop needed); what it printed."""
        done = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                               "-d", self.dsn(database), "-c", statement],
                              capture_output=True, text=True, timeout=self.start_timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def create_database(self) -> str:
        """A new empty database's name."""
        name = f"t_{secrets.token_hex(6)}"
        self.sql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        with open(self.base / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [*self._as, str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.base}",
                 # a throwaway server: durability is not what the tests are about
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.base,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_tail()}")
            ready = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                   check=False, timeout=10)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready on {self.port} within {self.start_timeout} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        log = self.base / "server.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended, nothing waits), then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
