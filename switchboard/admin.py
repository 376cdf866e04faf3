"""``switchboard admin``: look at and steer the cluster manager.

Commands (each takes ``--json`` for scripts; the default is a readable table)::

    switchboard admin workers [--purpose P]   every worker, or those of one purpose
    switchboard admin worker ID               one worker
    switchboard admin tasks ID                the tasks mapped to a worker
    switchboard admin drain ID [--wait]       cordon a worker: no new tasks; a controller moves its rooms away and exits
                                              (--wait: until it holds no task or has left, --wait-timeout bounds it)
    switchboard admin undrain ID              lift the cordon
    switchboard admin status                  manager state, uptime, workers and tasks per purpose
    switchboard admin rooms                   the rooms (token API management API, see switchboard.admin_rooms)
    switchboard admin participants ROOM       who is in a room
    switchboard admin kick ROOM PARTICIPANT   remove someone from a room (they get OWT's ``drop``)
    switchboard admin dead-letters list       what still failed after its retries (alerts, messages)
    switchboard admin dead-letters show ID    one dead letter with its payload
    switchboard admin dead-letters retry ID   deliver it again (an alert to its sink); removed on success
    switchboard admin dead-letters purge      drop every dead letter

The dead-letter commands are answered by the cluster's alert service (``<cluster>.alerts``).

How the cluster is reached:

- ``--broker amqp://…`` (default: ``$SWITCHBOARD_RPC__BROKER_URL``) calls the cluster manager
  ``--cluster`` (default ``cluster``) directly over RabbitMQ;
- otherwise ``--url http://HOST:3000`` (default: ``$SWITCHBOARD_ADMIN_URL`` or
  ``http://127.0.0.1:3000``) posts to the server's ``/admin/rpc`` (how an embedded server is
  reached).

Every admin call carries an admin key, checked by the cluster manager: ``--key``, else
``$SWITCHBOARD_ADMIN_KEY``, else the admin key in the embedded server's state file (``--state-file``,
default ``$SWITCHBOARD_KEYS__STATE_FILE`` or ``~/.local/state/switchboard/keys.json``), so that
``switchboard admin status`` works without flags on the machine that runs ``switchboard up``.

``rooms``, ``participants`` and ``kick`` always go over HTTP to the token API at ``--url`` (also in
cluster mode) with a service key: see :mod:`switchboard.admin_rooms`.

Exit codes: 0 success, 1 the manager refused (unknown worker, bad arguments, …), 2 the cluster
cannot be reached (or a usage error), 3 ``drain --wait`` gave up after ``--wait-timeout``; errors
are one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import aiohttp
import msgspec

from contracts.admin import AdminClient, DeadLettersClient

from .admin_drain import add_drain_wait_options, wait_until_empty
from .admin_rooms import ROOM_COMMANDS, RoomCommandError, add_room_commands, room_command, show_room_result

__all__ = ["run_admin", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNREACHABLE", "EXIT_WAITED_IN_VAIN"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2
EXIT_WAITED_IN_VAIN = 3

_DEFAULT_URL = "http://127.0.0.1:3000"
_ADMIN_PATH = "/admin/rpc"
_UNREACHABLE_CODES = frozenset({"unavailable", "timeout"})


class _Unreachable(Exception):
    """The cluster manager cannot be reached at all."""


class _Refused(Exception):
    """The cluster manager answered with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Client(Protocol):
    """How the cluster is reached (an :class:`~contracts.admin.AdminCaller`): over HTTP or a broker.
    Refusals raise :class:`_Refused`, an unreachable cluster :class:`_Unreachable`."""

    where: str
    #: The service names to call: the cluster manager's and its alert service's.
    cluster: str
    alerts: str

    async def call(self, target: str, method: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any: ...

    async def close(self) -> None: ...


class _HttpClient:
    """Posts each call to the server's ``/admin/rpc``, which relays it (to the cluster manager, or
    its alert service for the dead-letter methods) with the key of the ``Authorization`` header."""

    cluster = alerts = "relayed"

    def __init__(self, url: str, key: str, timeout: float) -> None:
        self.where = url
        self._endpoint = url.rstrip("/") + _ADMIN_PATH
        self._headers = {"Authorization": f"Bearer {key}"}
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))

    async def call(self, target: str, method: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        args = {name: value for name, value in (args or {}).items() if name != "admin_key"}  # in the header
        try:
            async with self._session.post(
                self._endpoint, json={"method": method, "args": args}, headers=self._headers
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
                status = response.status
        except asyncio.TimeoutError:
            raise _Unreachable("no answer in time") from None
        except aiohttp.ClientError as exc:
            raise _Unreachable(str(exc) or type(exc).__name__) from None
        if not isinstance(body, dict) or not ("result" in body or "error" in body):
            raise _Unreachable(f"no admin endpoint at {self._endpoint} (HTTP {status})")
        error = body.get("error")
        if error is not None:
            code, message = str(error.get("code", "error")), str(error.get("message", ""))
            if code in _UNREACHABLE_CODES:
                raise _Unreachable(message)
            raise _Refused(code, message)
        return body["result"]

    async def close(self) -> None:
        await self._session.close()


class _AmqpClient:
    def __init__(self, broker_url: str, cluster: str, timeout: float) -> None:
        from rpc import RpcSettings
        from rpc.amqp import AmqpTransport

        from alerts.faults import alerts_service_name

        self.where = f"{_redact(broker_url)} (service {cluster!r})"
        self.cluster = cluster
        self.alerts = alerts_service_name(cluster)
        self._timeout = timeout
        settings = RpcSettings(broker_url=broker_url, call_timeout=timeout)
        self._transport = AmqpTransport(f"admin-{uuid.uuid4().hex[:8]}", settings)

    async def call(self, target: str, method: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        from rpc import RpcRemoteError, RpcTimeout, RpcUnavailable

        try:
            async with asyncio.timeout(self._timeout):
                await self._transport.start()
            return await self._transport.call(target, method, args, timeout=timeout or self._timeout)
        except RpcRemoteError as exc:
            raise _Refused(exc.code, exc.message) from None
        except (RpcUnavailable, RpcTimeout) as exc:
            raise _Unreachable(exc.message) from None
        except TimeoutError:
            raise _Unreachable("the broker did not answer in time") from None

    async def close(self) -> None:
        await self._transport.close()


def _redact(url: str) -> str:
    """``amqp://user:secret@host`` → ``amqp://user:***@host`` (each of a cluster's comma-separated URLs)."""
    if "," in url:
        return ",".join(_redact(part.strip()) for part in url.split(","))
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


# -- output ---------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _address(info: dict[str, Any]) -> str:
    host = info.get("via_host") or info.get("hostname") or info.get("ip")
    if not host:
        return "-"
    port = info.get("port")
    return f"{host}:{port}" if port is not None else str(host)


def _show_workers(workers: list[dict[str, Any]]) -> str:
    if not workers:
        return "no workers"
    headers = ["ID", "PURPOSE", "STATE", "LOAD", "MAX", "DRAINED", "SCHEDULABLE", "RESERVED", "EXECUTING", "MISSED", "ADDRESS"]
    rows = [
        [w["id"], w["purpose"], w["state"], w["load"], w["max_load"], w["drained"], w["schedulable"],
         w["reserved"], w["executing"], w["missed_keepalives"], _address(w.get("info") or {})]
        for w in workers
    ]
    return _table(headers, rows)


def _show_worker(worker: dict[str, Any]) -> str:
    fields = [(k, v) for k, v in worker.items() if k != "info"]
    width = max(len(k) for k, _ in fields + [("info", None)])
    lines = [f"{k.ljust(width)}  {_cell(v)}" for k, v in fields]
    lines.append(f"{'info'.ljust(width)}  {json.dumps(worker.get('info'), sort_keys=True)}")
    return "\n".join(lines)


def _show_tasks(tasks: list[dict[str, Any]]) -> str:
    if not tasks:
        return "no tasks"
    return _table(["TASK", "STATE", "EXPIRES_IN"], [[t["task"], t["state"], t["expires_in"]] for t in tasks])


def _show_drain(worker: dict[str, Any]) -> str:
    if worker["drained"]:
        return (f"worker {worker['id']} drained: keeps {worker['executing']} executing and "
                f"{worker['reserved']} reserved tasks, gets no new ones")
    return f"worker {worker['id']} undrained: takes new tasks again"


def _show_status(status: dict[str, Any]) -> str:
    lines = [
        f"cluster manager {status['name']}: {status['state']}"
        + (f" (freshman, ready in {status['ready_in']:.1f} s)" if status["freshman"] else ""),
        f"uptime {status['uptime']:.1f} s",
    ]
    if status.get("epoch") is not None:
        lines.append(f"active: {status.get('node', '?')} (epoch {status['epoch']}; the others are standbys)")
    purposes = sorted(set(status["workers"]) | set(status["tasks"]))
    if purposes:
        rows = [
            [p, status["workers"].get(p, 0), status["tasks"].get(p, {}).get("reserved", 0),
             status["tasks"].get(p, {}).get("executing", 0)]
            for p in purposes
        ]
        lines += ["", _table(["PURPOSE", "WORKERS", "RESERVED", "EXECUTING"], rows)]
    else:
        lines.append("no workers")
    return "\n".join(lines)


def _when(at: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def _show_dead_letters(letters: list[dict[str, Any]]) -> str:
    if not letters:
        return "no dead letters"
    rows = [[d["id"], d["origin"], d["to"], d["attempts"], _when(d["at"]), d["reason"], d["description"]]
            for d in letters]
    return _table(["ID", "ORIGIN", "TO", "ATTEMPTS", "AT (UTC)", "REASON", "DESCRIPTION"], rows)


def _show_dead_letter(letter: dict[str, Any]) -> str:
    return json.dumps(letter, indent=2, sort_keys=True)


def _show_retry(result: dict[str, Any]) -> str:
    return f"dead letter {result['id']} delivered and removed"


def _show_purge(result: dict[str, Any]) -> str:
    return f"{result['purged']} dead letter(s) purged"


# -- commands -------------------------------------------------------------------------------------

class _Clients:
    """The typed clients of one command: the cluster manager's admin methods and its alert service's."""

    def __init__(self, client: _Client, key: str) -> None:
        self.admin = AdminClient(client, client.cluster, admin_key=key)
        self.letters = DeadLettersClient(client, client.alerts, admin_key=key)


_Command = Callable[[_Clients, argparse.Namespace], Awaitable[Any]]

#: What each command calls, and how its answer is shown.
_COMMANDS: dict[str, tuple[_Command, Callable[[Any], str]]] = {
    "workers": (lambda c, o: c.admin.get_workers(purpose=o.purpose or None), _show_workers),
    "worker": (lambda c, o: c.admin.get_worker(worker_id=o.worker_id), _show_worker),
    "tasks": (lambda c, o: c.admin.get_tasks(worker_id=o.worker_id), _show_tasks),
    "drain": (lambda c, o: c.admin.drain(worker_id=o.worker_id), _show_drain),
    "undrain": (lambda c, o: c.admin.undrain(worker_id=o.worker_id), _show_drain),
    "status": (lambda c, o: c.admin.status(), _show_status),
    "dead-letters list": (lambda c, o: c.letters.dead_letters_list(), _show_dead_letters),
    "dead-letters show": (lambda c, o: c.letters.dead_letters_show(letter_id=o.letter_id), _show_dead_letter),
    "dead-letters retry": (lambda c, o: c.letters.dead_letters_retry(letter_id=o.letter_id), _show_retry),
    "dead-letters purge": (lambda c, o: c.letters.dead_letters_purge(), _show_purge),
}


def _parser() -> argparse.ArgumentParser:
    # The connection options are accepted before and after the command; SUPPRESS keeps a
    # subcommand's parser from overwriting what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"server with /admin/rpc (default $SWITCHBOARD_ADMIN_URL or {_DEFAULT_URL})")
    common.add_argument("--broker", default=argparse.SUPPRESS,
                        help="AMQP URL of the cluster's broker (default $SWITCHBOARD_RPC__BROKER_URL)")
    common.add_argument("--cluster", default=argparse.SUPPRESS,
                        help="cluster manager service name, with --broker (default $SWITCHBOARD_CLUSTER_MANAGER__NAME or 'cluster')")
    common.add_argument("--key", default=argparse.SUPPRESS,
                        help="admin key (default $SWITCHBOARD_ADMIN_KEY, else the embedded server's state file)")
    common.add_argument("--state-file", default=argparse.SUPPRESS,
                        help="embedded server's key file (default $SWITCHBOARD_KEYS__STATE_FILE or ~/.local/state/switchboard/keys.json)")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="seconds to wait (default 5)")
    parser = argparse.ArgumentParser(prog="switchboard admin", parents=[common],
                                     description="Look at and steer the cluster manager.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    workers = sub.add_parser("workers", parents=[common], help="list workers")
    workers.add_argument("--purpose", help="only workers of this purpose")
    for name, text in (("worker", "show one worker"), ("tasks", "list a worker's tasks"),
                       ("drain", "cordon a worker (keeps its tasks, gets no new ones)"),
                       ("undrain", "lift a cordon")):
        sub.add_parser(name, parents=[common], help=text).add_argument("worker_id", metavar="ID")
    add_drain_wait_options(sub.choices["drain"])
    sub.add_parser("status", parents=[common], help="manager state and counts")
    add_room_commands(sub, common)
    letters = sub.add_parser("dead-letters", parents=[common], help="what failed after its retries")
    action = letters.add_subparsers(dest="action", required=True, metavar="ACTION")
    action.add_parser("list", parents=[common], help="list dead letters")
    for name, text in (("show", "show one dead letter"), ("retry", "deliver one again; removed on success")):
        action.add_parser(name, parents=[common], help=text).add_argument("letter_id", metavar="ID")
    action.add_parser("purge", parents=[common], help="drop every dead letter")
    return parser


class _NoKey(Exception):
    """No admin key was given and none could be read."""


def configured_key(options: argparse.Namespace, *, option: str, env: str, field: str) -> str:
    """A key from ``--<option>``, else ``$<env>``, else the embedded server's state file (its
    ``field``); :class:`~switchboard.localkeys.LocalKeysError` when none is given and the state file
    cannot be read."""
    from .localkeys import read, state_path

    key = getattr(options, option, None) or os.environ.get(env)
    if key:
        return str(key)
    path = state_path(getattr(options, "state_file", None) or os.environ.get("SWITCHBOARD_KEYS__STATE_FILE", ""))
    return str(getattr(read(path), field))


def _admin_key(options: argparse.Namespace) -> str:
    from .localkeys import LocalKeysError

    try:
        return configured_key(options, option="key", env="SWITCHBOARD_ADMIN_KEY", field="admin_key")
    except LocalKeysError as exc:
        raise _NoKey(f"no admin key: give --key or $SWITCHBOARD_ADMIN_KEY (the state file: {exc})") from None


def _client(options: argparse.Namespace, key: str) -> _Client:
    timeout = getattr(options, "timeout", 5.0)
    url = getattr(options, "url", None)
    broker = getattr(options, "broker", None)
    if url is None and broker is None:
        broker = os.environ.get("SWITCHBOARD_RPC__BROKER_URL") or None
    if broker:
        cluster = getattr(options, "cluster", None) or os.environ.get("SWITCHBOARD_CLUSTER_MANAGER__NAME") or "cluster"
        return _AmqpClient(broker, cluster, timeout)
    url = url or os.environ.get("SWITCHBOARD_ADMIN_URL") or _DEFAULT_URL
    return _HttpClient(url, key, timeout)


async def _run_rooms(options: argparse.Namespace) -> int:
    url = getattr(options, "url", None) or os.environ.get("SWITCHBOARD_ADMIN_URL") or _DEFAULT_URL
    try:
        result = await room_command(options, url, getattr(options, "timeout", 5.0))
    except RoomCommandError as exc:
        print(f"switchboard admin {options.command}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if exc.unreachable else EXIT_REFUSED
    if getattr(options, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(show_room_result(options.command, result))
    return EXIT_OK


async def _run(options: argparse.Namespace) -> int:
    if options.command in ROOM_COMMANDS:
        return await _run_rooms(options)
    command = options.command if options.command != "dead-letters" else f"dead-letters {options.action}"
    run, show = _COMMANDS[command]
    try:
        key = _admin_key(options)
        client = _client(options, key)
    except _NoKey as exc:
        print(f"switchboard admin: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    json_out = getattr(options, "json", False)
    try:
        clients = _Clients(client, key)
        result = msgspec.to_builtins(await run(clients, options))
        waiting = options.command == "drain" and options.wait
        if json_out:  # with --wait, one JSON object per line: the drain's, then each change
            print(json.dumps(result, sort_keys=True, indent=None if waiting else 2), flush=True)
        else:
            print(show(result), flush=True)
        if waiting:
            return await wait_until_empty(clients.admin, options.worker_id, timeout=options.wait_timeout,
                                          interval=options.poll_interval, json_lines=json_out)
    except _Unreachable as exc:
        print(f"switchboard admin: cannot reach the cluster manager at {client.where}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except _Refused as exc:
        print(f"switchboard admin: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        await client.close()
    return EXIT_OK


def _quiet_library_logs() -> None:
    # Without logging configured, Python prints library warnings (aio-pika's failed connection
    # attempts) to stderr; the CLI reports such failures itself, in one line.
    for name in ("aio_pika", "aiormq", "switchboard"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


def run_admin(argv: list[str]) -> int:
    """Run ``switchboard admin`` with ``argv`` (the arguments after ``admin``); return the exit code.

    Runs its own event loop: call it from synchronous code (or ``asyncio.to_thread``).
    """
    _quiet_library_logs()
    try:
        options = _parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_UNREACHABLE
    return asyncio.run(_run(options))
