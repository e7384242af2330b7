"""The HTTP gate in front of everything the web process serves: REST API, sign-in routes, pages.

It resolves the caller (session cookie or `Authorization: Bearer <API key>`), looks the route up
in app.auth.policy and refuses what the table does not allow, including what it does not list.
Reflex's own endpoints (event socket, /ping, /_health) and the built frontend's static files pass;
event handlers behind the socket are checked one by one by app.auth.guard.

A signed-in caller refused a page (403), or asking for one that does not exist (404), still gets the
app: the frontend is served with that status, and the page's first load event
(`AuthState.check_page`) shows the refusal in the app's layout (app/error_views.py). When the gate
itself cannot decide (the database is down), a page request gets the static error page of
app/error_html.py and an API request problem+json.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import routes
from app.auth import principal as principals
from app.auth import sessions
from app.auth.api_keys import rate_limiter
from app.auth.policy import (
    PUBLIC,
    REFLEX_UPLOAD_PATH,
    SCRAPE_TOKEN_ROUTES,
    SELF_AUTHENTICATED,
    allows,
    api_access,
    is_reflex_internal,
    is_static_path,
    page_access,
    page_route,
)
from app.auth.throttle import Throttled
from app.error_html import error_page_response, is_page_path
from app.problems import error_response, problem_response
from engine import audit
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import ErrorCode
from engine.settings import get_settings

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/auth/", "/v1/")  # /v1: the OpenAI-compatible API


def login_url(next_path: str = "") -> str:
    """/login, remembering where to go back to (a local path only)."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//"):
        return routes.LOGIN
    return f"{routes.LOGIN}?next={quote(next_path, safe='')}"


@dataclass(frozen=True)
class ApiRoute:
    """One route of the API app: its path template, methods and the regex FastAPI matches with."""

    path: str
    methods: frozenset[str]
    regex: re.Pattern[str]


def api_routes(router_routes: list[BaseRoute]) -> list[ApiRoute]:
    """Every route of the API app, with included routers flattened (FastAPI >= 0.16x keeps them lazy)."""
    found: list[ApiRoute] = []
    for route in router_routes:
        if isinstance(route, Mount):  # Reflex's catch-all mount and sub-apps are not API routes
            continue
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            found += [ApiRoute(c.path, frozenset(c.methods or ()), c.path_regex) for c in contexts()]
        elif getattr(route, "methods", None) and hasattr(route, "path_regex"):
            found.append(ApiRoute(route.path, frozenset(route.methods), route.path_regex))
    return found


def _route_template(router_routes: list[BaseRoute], path: str, method: str) -> tuple[str | None, bool]:
    """(path template of the API route a request hits, whether only the method differed)."""
    method = "GET" if method == "HEAD" else method
    partial = False
    for route in api_routes(router_routes):
        if route.regex.match(path):
            if method in route.methods:
                return route.path, False
            partial = True
    return None, partial


@dataclass(frozen=True)
class ServeWithStatus:
    """Let the frontend answer a page request, but with this HTTP status (its page shows why)."""

    status: int


def _with_status(send: Send, status: int) -> Send:
    """`send` with the response's status replaced by `status`, except a redirect (the frontend's
    /page -> /page/ stays one: the page it leads to gets the status)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and not 300 <= message["status"] < 400:
            message = {**message, "status": status}
        await send(message)

    return sending


def scrape_token_matches(headers: Headers) -> bool:
    """True when the request carries FLOWLOOM_METRICS_TOKEN as its bearer token (and one is set)."""
    expected = get_settings().metrics_token.get_secret_value()
    token = principals.bearer_token(headers.get("authorization", ""))
    return bool(expected and token) and hmac.compare_digest(token.encode(), expected.encode())


def same_origin(headers: Headers) -> bool:
    """False when a browser says the request comes from another site (CSRF); True without Origin."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower() != ""


class AuthMiddleware:
    """Pure ASGI middleware: one decision per request, the caller left in scope["state"]["principal"]."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if scope["type"] == "websocket":
            # Only Reflex's event socket, and only from this site's own pages: another site's page
            # must not open a socket that carries our user's cookie (cross-site WebSocket hijacking).
            if is_reflex_internal(path) and same_origin(Headers(scope=scope)):
                await self.app(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        try:
            response = await self._decide(scope, path)
        except DB_ERRORS as exc:
            log.warning("%s %s: cannot check the caller: %s", scope.get("method"), path, type(exc).__name__)
            if is_page_path(path):
                response = error_page_response(503, describe_db_error(exc), path)
            else:
                response = problem_response(ErrorCode.DATABASE_UNAVAILABLE, describe_db_error(exc))
        if isinstance(response, ServeWithStatus):
            await self.app(scope, receive, _with_status(send, response.status))
            return
        if response is not None:
            await response(scope, receive, send)
            return
        caller = scope.get("state", {}).get("principal")
        if caller is None or not path.startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        # What the route changes is audited as this caller, from the API, at this address.
        with audit.acting_as(audit.Who(caller.actor, "api", client[0] if client else "")):
            await self.app(scope, receive, send)

    async def _decide(self, scope: Scope, path: str) -> Response | ServeWithStatus | None:
        """None to let the request through, else the refusal (or the status to serve the page with)."""
        if path.startswith(API_PREFIXES) or path in ("/api", "/auth", "/v1", "/metrics"):
            return await self._api(scope, path)
        if is_reflex_internal(path):
            return None
        headers = Headers(scope=scope)
        if path == REFLEX_UPLOAD_PATH or path.startswith(REFLEX_UPLOAD_PATH + "/"):
            caller = await self._caller(scope, headers, allow_key=False)
            if caller is None:
                return problem_response(ErrorCode.SIGN_IN_REQUIRED, "sign in first")
            return None
        if is_static_path(path):
            return None
        return await self._page(scope, path, headers)

    async def _caller(
        self, scope: Scope, headers: Headers, *, allow_key: bool
    ) -> principals.Principal | None:
        state = scope.setdefault("state", {})
        token = principals.bearer_token(headers.get("authorization", "")) if allow_key else ""
        if token:
            client = scope.get("client")
            ip = client[0] if client else ""
            caller = await run_in_threadpool(principals.from_api_key, token, ip)
        else:
            raw = headers.get("cookie", "")
            cookie = sessions.cookie_from_header(raw)
            wanted = headers.get(principals.WORKSPACE_HEADER, "") or principals.workspace_from_cookie_header(
                raw
            )
            caller = (
                await run_in_threadpool(principals.from_session_token, cookie, wanted) if cookie else None
            )
        state["principal"] = caller
        return caller

    async def _api(self, scope: Scope, path: str) -> Response | None:
        method = scope.get("method", "GET").upper()
        template, wrong_method = _route_template(self.router.routes, path, method)
        if template is None:
            if wrong_method:
                return problem_response(ErrorCode.METHOD_NOT_ALLOWED, "Method Not Allowed")
            return problem_response(ErrorCode.NOT_FOUND, "Not Found")
        needed = api_access("GET" if method == "HEAD" else method, template)
        if needed is None:
            log.warning("refused %s %s: the route is not in the access policy", method, template)
            return problem_response(ErrorCode.NOT_IN_POLICY, "this route is not in the access policy")
        if needed == PUBLIC and (method, template) in SELF_AUTHENTICATED:
            scope.setdefault("state", {})["principal"] = None  # its signature is the authentication
            return None
        headers = Headers(scope=scope)
        if (method, template) in SCRAPE_TOKEN_ROUTES and scrape_token_matches(headers):
            scope.setdefault("state", {})["principal"] = None  # a scraper, not a user
            return None
        has_key = bool(principals.bearer_token(headers.get("authorization", "")))
        try:
            caller = await self._caller(scope, headers, allow_key=True)
        except Throttled as exc:  # too many bad keys from this client or for this key prefix
            return error_response(exc, headers={"Retry-After": str(exc.retry_after)})
        if has_key and caller is None:
            return _unauthorized(ErrorCode.API_KEY_UNKNOWN, "the API key is unknown or revoked")
        # Another site's page may not use our user's cookie, to change data (CSRF) or to read it
        # (Reflex answers CORS for any origin, and SameSite=Lax still sends cookies to other ports).
        if not has_key and not same_origin(headers):
            return problem_response(ErrorCode.CROSS_SITE_REFUSED, "cross-site request refused")
        if needed == PUBLIC:
            return None
        if caller is None:
            return _unauthorized(
                ErrorCode.SIGN_IN_REQUIRED, "sign in, or send an API key as 'Authorization: Bearer <key>'"
            )
        if caller.role == principals.NO_ROLE:
            return problem_response(
                ErrorCode.NO_WORKSPACE, "you are a member of no workspace: ask an admin to add you to one"
            )
        if not allows(caller.role, needed):
            return problem_response(
                ErrorCode.FORBIDDEN, f"this needs the {needed} role; you have {caller.role}"
            )
        if caller.key_id:
            wait = rate_limiter.take(caller.key_id, caller.key_rate_per_min)
            if wait:
                return problem_response(
                    ErrorCode.RATE_LIMITED,
                    f"rate limit of {caller.key_rate_per_min} requests a minute reached",
                    headers={"Retry-After": str(max(1, round(wait)))},
                )
        return None

    async def _page(self, scope: Scope, path: str, headers: Headers) -> Response | ServeWithStatus | None:
        route = page_route(path)
        needed = page_access(route) if route else None
        if needed == PUBLIC:
            return None
        caller = await self._caller(scope, headers, allow_key=False)
        if caller is None:
            query = scope.get("query_string", b"").decode("latin-1")
            return RedirectResponse(login_url(path + (f"?{query}" if query else "")), status_code=303)
        if scope.get("method", "GET").upper() not in ("GET", "HEAD"):
            return problem_response(ErrorCode.METHOD_NOT_ALLOWED, "pages answer GET and HEAD only")
        if needed is None:  # the app's "not found" page, in its layout
            return ServeWithStatus(404)
        if not allows(caller.role, needed):  # the page says which role it needs (app/error_views.py)
            log.info("refused page %s for %s (%s; needs %s)", path, caller.actor, caller.role, needed)
            return ServeWithStatus(403)
        return None


def _unauthorized(code: ErrorCode, detail: str) -> Response:
    return problem_response(code, detail, headers={"WWW-Authenticate": "Bearer"})
