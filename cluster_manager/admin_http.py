"""The admin RPC over HTTP, for servers the admin CLI cannot reach through a broker (embedded mode).

``POST /admin/rpc`` with ``{"method": "...", "args": {...}}`` relays the call to the cluster
manager over the transport and answers ``{"result": ...}`` (200) or
``{"error": {"code", "message"}}`` with a status that fits the code (400 bad input, 401 no or wrong
admin key, 404 unknown method/worker/task, 415 not JSON, 503 manager unreachable, 504 timeout, 409
anything else refused).  Only ``allowed_methods`` pass; the route never reaches the worker-facing
methods.

The caller's ``Authorization: Bearer <admin key>`` is passed on as the call's ``admin_key``: the
cluster manager checks it (this relay holds no key), so the HTTP route and the broker are guarded by
the same check.  The body must be ``application/json``, which a web page on another origin cannot
send without a CORS preflight, and no CORS header is ever sent here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec
from aiohttp import web

from contracts.admin_http import AdminAnswer, AdminError, AdminErrorBody, AdminRequest
from rpc import RpcError, RpcRemoteError, RpcTimeout, RpcUnavailable, Transport
from rpc.errors import BAD_ARGUMENTS, INTERNAL, UNKNOWN_METHOD

from .admin_service import ADMIN_METHODS

__all__ = ["admin_rpc_routes", "ADMIN_RPC_PATH"]

#: Where the routes are mounted by default.
ADMIN_RPC_PATH = "/admin/rpc"

_STATUS_FOR_CODE = {
    BAD_ARGUMENTS: 400,
    UNKNOWN_METHOD: 404,
    "unknown_worker": 404,
    "unknown_task": 404,
    "unknown_dead_letter": 404,
    "unauthorized": 401,
    "unsupported_media_type": 415,
    RpcUnavailable.code: 503,
    RpcTimeout.code: 504,
    INTERNAL: 500,
}


_decode_request = msgspec.json.Decoder(AdminRequest).decode
_encode = msgspec.json.Encoder().encode


def _error(code: str, message: str) -> web.Response:
    return web.Response(
        body=_encode(AdminErrorBody(AdminError(code, message))),
        status=_STATUS_FOR_CODE.get(code, 409),
        content_type="application/json",
    )


def admin_rpc_routes(
    transport: Transport,
    cluster_name: str,
    *,
    allowed_methods: Iterable[str] = ADMIN_METHODS,
    timeout: float | None = None,
    path: str = ADMIN_RPC_PATH,
    services: Mapping[str, str] | None = None,
) -> list[web.RouteDef]:
    """Routes that relay admin calls to the cluster manager ``cluster_name`` over ``transport``.

    :param allowed_methods: the methods callers may use (default: every admin method,
        :data:`cluster_manager.ADMIN_METHODS`); anything else gets 404 ``unknown_method``.
    :param timeout: per-call timeout in seconds (default: the transport's).
    :param path: where to mount the route.
    :param services: methods served by another service than the cluster manager (the dead-letter
        methods by the alert service), by method; each must be in ``allowed_methods``.

    Mount with ``app.add_routes(admin_rpc_routes(transport, settings.name))``.
    """
    allowed = frozenset(allowed_methods)
    targets = dict(services or {})

    async def relay(request: web.Request) -> web.Response:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return _error("unauthorized", "admin calls need Authorization: Bearer <admin key>")
        if request.content_type != "application/json":
            return _error("unsupported_media_type", "the body must be application/json")
        try:
            body = _decode_request(await request.read())
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _error(BAD_ARGUMENTS, 'body must be {"method": str, "args": object}')
        if body.method not in allowed:
            return _error(UNKNOWN_METHOD, f"not an admin method; expected one of: {', '.join(sorted(allowed))}")
        if "admin_key" in body.args:
            return _error(BAD_ARGUMENTS, "the admin key goes in the Authorization header, not in args")
        try:
            result = await transport.call(targets.get(body.method, cluster_name), body.method,
                                          {**body.args, "admin_key": key.strip()}, timeout=timeout)
        except RpcRemoteError as exc:
            return _error(exc.code, exc.message)
        except RpcUnavailable as exc:
            return _error(RpcUnavailable.code, f"cluster manager {cluster_name!r} is unreachable: {exc.message}")
        except RpcError as exc:
            return _error(exc.code, exc.message)
        return web.Response(body=_encode(AdminAnswer(result)), content_type="application/json")

    return [web.post(path, relay)]
