"""The status page: ``/dashboard`` and its JSON, event-stream and drain routes, behind an admin key.

- ``GET /dashboard``: the page (plain HTML, CSS and JS from ``token_api/static/``) for a logged-in
  browser; otherwise 401 with the login form.
- ``POST /dashboard/login`` (form field ``admin_key``): the cluster manager checks the key (its
  ``status`` method); a good key opens a session (:mod:`token_api.dashboard_sessions`) and sets its
  cookie; attempts are rate limited per client address.  ``POST /dashboard/logout`` ends it.
- ``GET /dashboard/state``: the board as JSON (:class:`~token_api.dashboard_data.Board`).
- ``GET /dashboard/events``: the same board as server-sent events (``event: board``), sent again
  whenever it changes, read every ``dashboard.refresh_interval``.
- ``POST /dashboard/drain`` and ``/dashboard/undrain`` (JSON ``{"worker_id": …}``): the admin methods
  of the same names.

Every route but the login form and the static files needs the session cookie (401 without).  The
cookie is HttpOnly and SameSite=Strict; every POST but the login must also carry the session's
CSRF token in ``X-CSRF-Token`` (the page reads it from its own HTML) and, when the browser sends an
``Origin``, come from this server's own origin.  No CORS header is ever sent on these routes, no page
may frame them, and the page runs no inline script (``Content-Security-Policy``).
"""

from __future__ import annotations

import asyncio
import functools
import html
from importlib import resources
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from contracts.admin import AdminClient
from contracts.admin_http import AdminAnswer, AdminError, AdminErrorBody
from credentials import readable_validation
from edge import AddressRateLimiter, client_address
from rpc import RpcError, RpcRemoteError, RpcTimeout, RpcUnavailable

from .app_keys import CLUSTER_NAME, SETTINGS, TRANSPORT, TRUSTED_PROXIES
from .dashboard_data import Board, BoardReader
from .dashboard_sessions import DashboardSession, DashboardSessions
from .logs import log

__all__ = ["install_dashboard", "dashboard_routes", "DASHBOARD_PREFIX", "SESSIONS", "COOKIE", "CSRF_HEADER",
           "LoginForm", "WorkerBody", "LoggedOut", "StaticName"]


DASHBOARD_PREFIX = "/dashboard"
COOKIE = "switchboard_dashboard"
CSRF_HEADER = "X-CSRF-Token"

SESSIONS = web.AppKey("dashboard_sessions", DashboardSessions)
_LOGIN_LIMITER = web.AppKey("dashboard_login_limiter", AddressRateLimiter)
_STREAMS = web.AppKey[set["asyncio.Task[Any]"]]("dashboard_streams")
_CLOSING = web.AppKey("dashboard_closing", asyncio.Event)

#: The page's files (any other name is 404).
StaticName = Literal["dashboard.js", "dashboard.css"]
_STATIC: dict[str, str] = dict(zip(get_args(StaticName), ("text/javascript", "text/css"), strict=True))
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it a browser sends "Origin: null" on the login form's POST.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_STATUS_FOR_CODE = {"unauthorized": 401, "unknown_worker": 404, "bad_arguments": 400,
                    RpcUnavailable.code: 503, RpcTimeout.code: 504}

_encode = msgspec.json.Encoder().encode


class WorkerBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /dashboard/drain`` and ``/dashboard/undrain``."""

    worker_id: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class LoginForm(msgspec.Struct):
    """The login form (``application/x-www-form-urlencoded``): the operator's admin key."""

    admin_key: Annotated[str, msgspec.Meta(min_length=1)]


class LoggedOut(msgspec.Struct):
    """Body of ``POST /dashboard/logout``."""

    result: Literal["logged out"] = "logged out"


@functools.cache
def _static_text(name: str) -> str:
    return resources.files("token_api").joinpath("static", name).read_text(encoding="utf-8")


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in _SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def _json(status: int, body: object) -> web.Response:
    response = web.Response(status=status, body=_encode(body), content_type="application/json")
    _secured(response)
    return response


def _refused(status: int, code: str, message: str) -> web.Response:
    return _json(status, AdminErrorBody(AdminError(code, message)))


def _login_page(message: str = "", status: int = 401) -> web.Response:
    text = _static_text("login.html").replace("{{message}}", html.escape(message))
    response = web.Response(status=status, text=text, content_type="text/html")
    _secured(response)
    return response


def _session(request: web.Request) -> DashboardSession | None:
    return request.app[SESSIONS].find(request.cookies.get(COOKIE))


def _same_origin(request: web.Request) -> bool:
    """No ``Origin`` (no browser, or one that sends none on a same-origin form), or one naming this
    server's host and port.  The scheme is not compared: behind a proxy that ends TLS the browser
    says ``https`` while this server sees ``http``."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def _checked_post(request: web.Request) -> DashboardSession | web.Response:
    """The session of a page POST, or the refusal: no session (401), another origin or no CSRF token (403)."""
    session = _session(request)
    if session is None:
        return _refused(401, "unauthorized", "log in at /dashboard first")
    if not _same_origin(request) or not session.csrf_matches(request.headers.get(CSRF_HEADER)):
        return _refused(403, "csrf", f"a page POST needs this server's origin and the {CSRF_HEADER} header")
    return session


def _admin(request: web.Request, admin_key: str) -> AdminClient:
    """The cluster manager's admin methods, called with ``admin_key``."""
    return AdminClient(request.app[TRANSPORT], request.app[CLUSTER_NAME], admin_key=admin_key,
                       timeout=request.app[SETTINGS].dashboard.call_timeout)


# -- page and login ------------------------------------------------------------------------------


async def page(request: web.Request) -> web.Response:
    session = _session(request)
    if session is None:
        return _login_page()
    text = _static_text("dashboard.html").replace("{{csrf}}", session.csrf)
    response = web.Response(text=text, content_type="text/html")
    _secured(response)
    return response


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = _STATIC.get(name)
    if content_type is None:
        return _refused(404, "not_found", "no such file")
    response = web.Response(text=_static_text(name), content_type=content_type)
    _secured(response)
    return response


async def login(request: web.Request) -> web.Response:
    app = request.app
    if not _same_origin(request):
        return _login_page("Log in from this server's own page.", status=403)
    wait = app[_LOGIN_LIMITER].take(client_address(request, app[TRUSTED_PROXIES]))
    if wait:
        response = _login_page(f"Too many attempts; try again in {wait} s.", status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _login_page("Send the login form.", status=415)
    form = await request.post()
    try:
        key = msgspec.convert({"admin_key": form.get("admin_key")}, LoginForm).admin_key
    except msgspec.ValidationError:
        key = ""
    if not key.strip():
        return _login_page("Enter an admin key.", status=400)
    try:
        await _admin(request, key.strip()).status()
    except RpcRemoteError as exc:
        if exc.code == "unauthorized":
            log.warning("dashboard_login_refused", remote=client_address(request, app[TRUSTED_PROXIES]))
            return _login_page("That is not an admin key of this cluster.")
        return _login_page(f"The cluster manager refused: {exc.code}.", status=503)
    except RpcError:
        return _login_page("The cluster manager cannot be reached; try again.", status=503)
    cookie, _ = app[SESSIONS].open(key.strip())
    settings = app[SETTINGS].dashboard
    response = web.Response(status=303, headers={"Location": DASHBOARD_PREFIX})
    response.set_cookie(COOKIE, cookie, path=DASHBOARD_PREFIX, httponly=True, samesite="Strict",
                        secure=settings.secure_cookie or request.secure, max_age=int(settings.session_lifetime))
    _secured(response)
    log.info("dashboard_login", sessions=len(app[SESSIONS]))
    return response


async def logout(request: web.Request) -> web.Response:
    checked = _checked_post(request)
    if isinstance(checked, web.Response):
        return checked
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    response = _json(200, LoggedOut())
    response.del_cookie(COOKIE, path=DASHBOARD_PREFIX)
    return response


# -- data ----------------------------------------------------------------------------------------


def _reader(request: web.Request, session: DashboardSession) -> BoardReader:
    app = request.app
    settings = app[SETTINGS].dashboard
    return BoardReader(app[TRANSPORT], app[CLUSTER_NAME], session.admin_key, call_timeout=settings.call_timeout,
                       faults_kept=settings.faults_shown)


async def state(request: web.Request) -> web.Response:
    session = _session(request)
    if session is None:
        return _refused(401, "unauthorized", "log in at /dashboard first")
    board = await _reader(request, session).read()
    if _key_refused(request, board):
        return _refused(401, "unauthorized", "the admin key was revoked; log in again")
    return _json(200, board)


def _key_refused(request: web.Request, board: Board) -> bool:
    """The manager no longer accepts the session's key (rotated away): the session ends."""
    if board.error is None or board.error.code != "unauthorized":
        return False
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    return True


async def events(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    if session is None:
        return _refused(401, "unauthorized", "log in at /dashboard first")
    app = request.app
    settings = app[SETTINGS].dashboard
    streams = app[_STREAMS]
    if len(streams) >= settings.streams:
        return _refused(503, "too_many_streams", "too many live pages; close one or retry later")
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    try:
        return await _stream(request, session)
    finally:
        streams.discard(task)


async def _stream(request: web.Request, session: DashboardSession) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS].dashboard
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    _secured(response)
    await response.prepare(request)
    reader = _reader(request, session)
    closing = app[_CLOSING]
    last = b""
    try:
        while not closing.is_set():
            if app[SESSIONS].find(request.cookies.get(COOKIE)) is None:
                await response.write(b"event: logout\ndata: {}\n\n")
                break
            board = await reader.read()
            if _key_refused(request, board):
                await response.write(b"event: logout\ndata: {}\n\n")
                break
            data = _encode(board)
            await response.write(b"event: board\ndata: " + data + b"\n\n" if data != last else b": still\n\n")
            last = data
            try:
                await asyncio.wait_for(closing.wait(), settings.refresh_interval)
            except TimeoutError:
                pass
    except (ConnectionResetError, ConnectionError):
        pass  # the browser went away
    return response


# -- drain ---------------------------------------------------------------------------------------


async def _drain_or_undrain(request: web.Request, drained: bool) -> web.Response:
    checked = _checked_post(request)
    if isinstance(checked, web.Response):
        return checked
    if request.content_type != "application/json":
        return _refused(415, "unsupported_media_type", "the body must be application/json")
    try:
        body = msgspec.json.decode(await request.read(), type=WorkerBody)
    except msgspec.ValidationError as exc:
        return _refused(400, "bad_arguments", f"body must be {{\"worker_id\": str}}: {readable_validation(str(exc))}")
    except msgspec.DecodeError:
        return _refused(400, "bad_arguments", 'body must be {"worker_id": str}')
    try:
        admin = _admin(request, checked.admin_key)
        result = await (admin.drain if drained else admin.undrain)(worker_id=body.worker_id)
    except RpcRemoteError as exc:
        return _refused(_STATUS_FOR_CODE.get(exc.code, 409), exc.code, exc.message)
    except RpcError as exc:
        return _refused(_STATUS_FOR_CODE.get(exc.code, 503), exc.code, exc.message)
    log.info("dashboard_drain" if drained else "dashboard_undrain", worker=body.worker_id)
    return _json(200, AdminAnswer(result))


async def drain(request: web.Request) -> web.Response:
    return await _drain_or_undrain(request, True)


async def undrain(request: web.Request) -> web.Response:
    return await _drain_or_undrain(request, False)


# -- assembly ------------------------------------------------------------------------------------


def install_dashboard(app: web.Application) -> None:
    """Mount the routes and what they keep (sessions, the login limiter, the live streams)."""
    settings = app[SETTINGS].dashboard
    app[SESSIONS] = DashboardSessions(settings.session_lifetime, settings.sessions)
    app[_LOGIN_LIMITER] = AddressRateLimiter(settings.logins_per_address_per_second, settings.logins_per_address_burst,
                                             settings.login_limit_addresses)
    app[_STREAMS] = set()
    app[_CLOSING] = asyncio.Event()
    app.add_routes(dashboard_routes())

    async def on_shutdown(app: web.Application) -> None:
        app[_CLOSING].set()

    app.on_shutdown.append(on_shutdown)


def dashboard_routes() -> list[web.RouteDef]:
    return [
        web.get(DASHBOARD_PREFIX, page),
        web.post(f"{DASHBOARD_PREFIX}/login", login),
        web.post(f"{DASHBOARD_PREFIX}/logout", logout),
        web.get(f"{DASHBOARD_PREFIX}/state", state),
        web.get(f"{DASHBOARD_PREFIX}/events", events),
        web.post(f"{DASHBOARD_PREFIX}/drain", drain),
        web.post(f"{DASHBOARD_PREFIX}/undrain", undrain),
        web.get(f"{DASHBOARD_PREFIX}/static/{{name}}", static),
    ]
