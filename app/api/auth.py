"""Sign-in: /auth/* (providers, local admin, first-run setup, sign-out). `install` wires these
routes, the access routes (app/api/access.py) and the auth gate into the API app.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app import routes
from app.api import access
from app.api.callers import client_ip
from app.api.security_headers import served_over_https
from app.auth import local, oidc, sessions, throttle, users
from app.auth.middleware import AuthMiddleware, login_url
from app.auth.principal import session_cache
from app.db import db_session
from engine import audit, workspaces
from engine.errors import ErrorCode, user_message

log = logging.getLogger(__name__)

auth_router = APIRouter(prefix="/auth", tags=["sign-in"])

OAUTH_COOKIE = "flowloom_oauth"
OAUTH_COOKIE_MAX_AGE_S = 600
# Failed sign-ins count per client address and per account (app.auth.throttle), in PostgreSQL.
LOGIN_KIND = "login"


def safe_next(value: str | None) -> str:
    """A local path to return to after sign-in; anything else becomes the home page."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or value.startswith("/auth/")
    ):
        return routes.INDEX
    return value[:2000]


def _is_https(request: Request) -> bool:
    return served_over_https(request.scope)  # the scheme, or X-Forwarded-Proto from a trusted proxy


def _signed_in(request: Request, user_id: str, next_path: str) -> RedirectResponse:
    token, _ = sessions.issue(user_id)
    response = RedirectResponse(safe_next(next_path), status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        value=token, max_age=sessions.MAX_AGE_S, **sessions.cookie_attributes(_is_https(request))
    )
    return response


def _to_login(code: ErrorCode, next_path: str = "") -> RedirectResponse:
    url = f"{routes.LOGIN}?error={code}"
    if next_path and safe_next(next_path) != routes.INDEX:
        url = login_url(next_path) + f"&error={code}"
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


# ---------------------------------------------------------------------------------------------
# /auth: providers, local admin, sign-out


@auth_router.get("/login/{provider}", name="auth_login")
async def login(request: Request, provider: str, next: str = "") -> Response:
    """Start signing in with a provider: redirect there (PKCE S256, state and nonce)."""
    try:
        registry = oidc.registry()
        request.session.clear()
        request.session["next"] = safe_next(next)
        redirect_uri = str(request.base_url).rstrip("/") + f"/auth/callback/{provider}"
        return await registry.begin(request, provider, redirect_uri)
    except oidc.SignInError as exc:
        return _to_login(exc.code, next)


def _record_sign_in(identity: oidc.Identity, provider: str, ip: str) -> tuple[str | None, str]:
    """Create or update the user; (user id or None when deactivated, its e-mail)."""
    with db_session() as session:
        user, created = users.upsert_signed_in(
            session, issuer=identity.issuer, subject=identity.subject, email=identity.email,
            email_verified=identity.email_verified, name=identity.name,
        )  # fmt: skip
        if created:
            audit.record(session, actor=user.email, action="user.created", target_type="user",
                         target_id=str(user.id), details={"issuer": user.issuer, "role": user.role}, ip=ip)  # fmt: skip
        if not user.is_active:
            audit.record(session, actor=user.email, action="auth.sign_in_refused", target_type="user",
                         target_id=str(user.id), details={"reason": "deactivated"}, ip=ip)  # fmt: skip
            return None, user.email
        grants = oidc.registry().workspace_grants(provider)
        if grants:  # the provider manages the workspaces its mapping names
            session.flush()
            workspaces.apply_group_roles(session, user, grants, identity.groups, actor=user.email, ip=ip)
        audit.record(session, actor=user.email, action="auth.sign_in", target_type="user",
                     target_id=str(user.id), details={"provider": provider, "role": user.role}, ip=ip)  # fmt: skip
        return str(user.id), user.email


@auth_router.get("/callback/{provider}", name="auth_callback")
async def callback(request: Request, provider: str) -> Response:
    """The provider sends the browser back here: check everything, then sign the user in."""
    next_path = request.session.get("next", "")
    try:
        identity = await oidc.registry().finish(request, provider)
    except oidc.SignInError as exc:
        request.session.clear()
        await run_in_threadpool(
            audit.record_now, actor="", action="auth.sign_in_failed", target_type="provider",
            target_id=provider, details={"reason": str(exc.code)}, ip=client_ip(request),
        )  # fmt: skip
        return _to_login(exc.code)
    request.session.clear()
    user_id, _ = await run_in_threadpool(_record_sign_in, identity, provider, client_ip(request))
    if user_id is None:
        return _to_login(ErrorCode.INACTIVE)
    return _signed_in(request, user_id, next_path)


def _login_keys(ip: str, email: str = "") -> list[str]:
    """Throttle keys of a sign-in attempt: the client's address and (when given) the account."""
    keys = [throttle.client_key(LOGIN_KIND, ip)] if ip else []
    if email.strip():
        keys.append(throttle.subject_key(f"{LOGIN_KIND}-account", email))
    return keys


def _too_many(exc: throttle.Throttled) -> HTMLResponse:
    """429 for a sign-in form post: what happened, how long to wait, the way back."""
    page = (
        "<!doctype html><title>Too many attempts</title>"
        f'<p>Sign-in refused: {escape(user_message(exc))}.</p><p><a href="{routes.LOGIN}">Back to sign-in</a></p>'
    )
    return HTMLResponse(page, status_code=429, headers={"Retry-After": str(exc.retry_after)})


def _local_login(email: str, password: str, ip: str) -> str | None:
    """The user id for a right password; None otherwise. Raises `throttle.Throttled` unchecked
    after too many failures from this address or for this account."""
    keys = _login_keys(ip, email)
    with db_session() as session:
        throttle.check(session, keys, "sign-in", "account")
        user = local.verify_login(session, email, password)
        if user is None:
            throttle.record_failure(session, keys)
            audit.record(session, actor=email.strip().lower()[:320], action="auth.sign_in_failed",
                         target_type="local", details={"reason": "bad_credentials"}, ip=ip)  # fmt: skip
            return None
        throttle.clear(session, keys[1:])  # the account's count; the address keeps its own
        audit.record(session, actor=user.email, action="auth.sign_in", target_type="user",
                     target_id=str(user.id), details={"provider": "local", "role": user.role}, ip=ip)  # fmt: skip
        return str(user.id)


@auth_router.post("/local")
async def local_login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=local.MAX_PASSWORD_LENGTH)],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Sign in with the local admin's e-mail and password (form post from /login)."""
    ip = client_ip(request)
    try:
        user_id = await run_in_threadpool(_local_login, email, password, ip)
    except throttle.Throttled as exc:
        log.warning("sign-in from %s refused: %s", ip, exc)
        return _too_many(exc)
    if user_id is None:
        return _to_login(ErrorCode.BAD_CREDENTIALS, next)
    return _signed_in(request, user_id, next)


def _setup(code: str, email: str, password: str, ip: str) -> str:
    """Create the first admin; a wrong setup code counts as a failed sign-in of this address."""
    keys = _login_keys(ip)
    with db_session() as session:
        throttle.check(session, keys, "sign-in", "account")
    try:
        with db_session() as session:
            return str(local.complete_setup(session, code=code, email=email, password=password, ip=ip).id)
    except local.LocalAccountError as exc:
        if exc.code == ErrorCode.SETUP_CODE:
            with db_session() as session:
                throttle.record_failure(session, keys)
        raise


@auth_router.post("/setup")
async def setup(
    request: Request,
    code: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=local.MAX_PASSWORD_LENGTH)],
    password_again: Annotated[str, Form(max_length=local.MAX_PASSWORD_LENGTH)],
) -> Response:
    """First run only: create the local admin with the setup code from the data directory."""
    ip = client_ip(request)
    if password != password_again:
        return _to_login(ErrorCode.PASSWORDS_DIFFER)
    try:
        user_id = await run_in_threadpool(_setup, code, email, password, ip)
    except throttle.Throttled as exc:
        return _too_many(exc)
    except local.LocalAccountError as exc:
        return _to_login(exc.code)
    return _signed_in(request, user_id, routes.INDEX)


@auth_router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out: the session is revoked (not only forgotten by this browser) and the cookie cleared."""
    token = sessions.cookie_from_header(request.headers.get("cookie", ""))
    data = await run_in_threadpool(sessions.decode, token) if token else None
    if data is not None:
        await run_in_threadpool(sessions.revoke, data)  # PostgreSQL: every process refuses it from now
        session_cache.forget(token)
        principal = getattr(request.state, "principal", None)
        await run_in_threadpool(
            audit.record_now, actor=principal.email if principal else data.user_id, action="auth.sign_out",
            target_type="user", target_id=data.user_id, ip=client_ip(request),
        )  # fmt: skip
    response = RedirectResponse(f"{routes.LOGIN}?signed_out=1", status_code=status.HTTP_303_SEE_OTHER)
    attributes = sessions.cookie_attributes(_is_https(request))
    response.delete_cookie(**attributes)
    return response


# ---------------------------------------------------------------------------------------------


class OAuthStateCookie:
    """Starlette's SessionMiddleware for /auth only: holds state, nonce and PKCE verifier for 10 minutes.

    Built on first use, so importing the API does not need the secret key yet.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inner: dict[bool, ASGIApp] = {}  # by "served over HTTPS": that one sets a Secure cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/auth/"):
            await self.app(scope, receive, send)
            return
        https = served_over_https(scope)
        if https not in self._inner:
            self._inner[https] = SessionMiddleware(
                self.app, secret_key=sessions.derived_key("oauth-state"), session_cookie=OAUTH_COOKIE,
                max_age=OAUTH_COOKIE_MAX_AGE_S, path="/auth", same_site="lax", https_only=https,
            )  # fmt: skip
        await self._inner[https](scope, receive, send)


def install(api: FastAPI) -> None:
    """Add the sign-in and access routes, the OAuth state cookie and the auth gate to `api`."""
    api.include_router(auth_router)
    api.include_router(access.router, prefix=routes.API_PREFIX)
    api.add_middleware(OAuthStateCookie)
    api.add_middleware(AuthMiddleware, router=api.router)  # added last: runs first
