"""Sign-in and access: /auth/* (providers, local admin, sign-out) and /api/me, /api/keys,
/api/users, /api/audit. `install` wires these routes and the auth middleware into the API app.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app import routes
from app.auth import api_keys, audit, local, oidc, sessions, users
from app.auth.middleware import AuthMiddleware, login_url
from app.auth.policy import Role, allows
from app.auth.principal import Principal, session_cache
from app.db import db_session

log = logging.getLogger(__name__)

auth_router = APIRouter(prefix="/auth", tags=["sign-in"])
router = APIRouter(tags=["access"])

OAUTH_COOKIE = "flowloom_oauth"
OAUTH_COOKIE_MAX_AGE_S = 600
LOGIN_ATTEMPTS_PER_MIN = 10


# ---------------------------------------------------------------------------------------------
# Who is calling (the middleware resolved it; these refuse again if it did not run).


def caller(request: Request) -> Principal:
    """The signed-in user or API key of this request; 401 when there is none."""
    found = getattr(request.state, "principal", None)
    if found is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="sign in first")
    return found


def requires(role: Role):
    """A dependency that refuses callers below `role`."""

    def check(principal: Annotated[Principal, Depends(caller)]) -> Principal:
        if not allows(principal.role, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"this needs the {role} role")
        return principal

    return check


Caller = Annotated[Principal, Depends(caller)]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


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
    return request.url.scheme == "https"


def _signed_in(request: Request, user_id: str, next_path: str) -> RedirectResponse:
    token, _ = sessions.issue(user_id)
    response = RedirectResponse(safe_next(next_path), status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        value=token, max_age=sessions.MAX_AGE_S, **sessions.cookie_attributes(_is_https(request))
    )
    return response


def _to_login(code: str, next_path: str = "") -> RedirectResponse:
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
            target_id=provider, details={"reason": exc.code}, ip=client_ip(request),
        )  # fmt: skip
        return _to_login(exc.code)
    request.session.clear()
    user_id, _ = await run_in_threadpool(_record_sign_in, identity, provider, client_ip(request))
    if user_id is None:
        return _to_login("inactive")
    return _signed_in(request, user_id, next_path)


def _local_login(email: str, password: str, ip: str) -> str | None:
    with db_session() as session:
        user = local.verify_login(session, email, password)
        if user is None:
            audit.record(session, actor=email.strip().lower()[:320], action="auth.sign_in_failed",
                         target_type="local", details={"reason": "bad_credentials"}, ip=ip)  # fmt: skip
            return None
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
    if api_keys.rate_limiter.take(f"login:{ip}", LOGIN_ATTEMPTS_PER_MIN):
        return _to_login("too_many_attempts", next)
    user_id = await run_in_threadpool(_local_login, email, password, ip)
    if user_id is None:
        return _to_login("bad_credentials", next)
    return _signed_in(request, user_id, next)


def _setup(code: str, email: str, password: str, ip: str) -> str:
    with db_session() as session:
        return str(local.complete_setup(session, code=code, email=email, password=password, ip=ip).id)


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
    if api_keys.rate_limiter.take(f"login:{ip}", LOGIN_ATTEMPTS_PER_MIN):
        return _to_login("too_many_attempts")
    if password != password_again:
        return _to_login("passwords_differ")
    try:
        user_id = await run_in_threadpool(_setup, code, email, password, ip)
    except local.LocalAccountError as exc:
        return _to_login(exc.code)
    return _signed_in(request, user_id, routes.INDEX)


@auth_router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out: the session is revoked (not only forgotten by this browser) and the cookie cleared."""
    token = sessions.cookie_from_header(request.headers.get("cookie", ""))
    data = sessions.decode(token) if token else None
    if data is not None:
        sessions.revoke(data)
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
# /api/me, /api/keys, /api/users, /api/audit


class MePublic(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    role: str
    via: str


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.VIEWER
    rate_limit_per_min: int = Field(120, ge=1, le=api_keys.MAX_RATE_PER_MIN)


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    role: str
    rate_limit_per_min: int
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown this once, store it now")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    issuer: str
    email: str
    name: str
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None = None


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None


class AuditPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any] | None = None
    ip: str


@router.get("/me", response_model=MePublic)
def me(principal: Caller) -> MePublic:
    """Who you are signed in as, and your role (an API key's role when you use one)."""
    return MePublic(
        id=uuid.UUID(principal.user_id), email=principal.email, name=principal.name, role=principal.role,
        via=principal.via,
    )  # fmt: skip


@router.get("/keys", response_model=list[ApiKeyPublic])
def list_keys(principal: Caller) -> list[ApiKeyPublic]:
    """Your API keys (never the keys themselves)."""
    with db_session() as session:
        rows = api_keys.list_keys(session, uuid.UUID(principal.user_id))
        return [ApiKeyPublic.model_validate(r) for r in rows]


@router.post("/keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, principal: Caller, request: Request) -> ApiKeyCreated:
    """Create a key with a role up to your own; the answer holds the key, shown only this once."""
    if principal.via != "session":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="sign in to create keys; a key cannot make keys"
        )
    with db_session() as session:
        owner = users.get_user(session, principal.user_id)
        if owner is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="sign in first")
        try:
            row, key = api_keys.create(
                session, owner, name=body.name, role=body.role, rate_limit_per_min=body.rate_limit_per_min
            )
        except api_keys.ApiKeyError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from exc
        audit.record(
            session, actor=principal.actor, action="api_key.created", target_type="api_key",
            target_id=str(row.id), details={"name": row.name, "prefix": row.prefix, "role": row.role},
            ip=client_ip(request),
        )  # fmt: skip
        public = ApiKeyPublic.model_validate(row)
    return ApiKeyCreated(**public.model_dump(), key=key)


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
def revoke_key(key_id: uuid.UUID, principal: Caller, request: Request) -> Response:
    """Revoke one of your keys (admins: any key); it stops working at once."""
    with db_session() as session:
        row = api_keys.revoke(session, key_id, by_user=uuid.UUID(principal.user_id), by_role=principal.role)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"API key {key_id} not found")
        audit.record(
            session, actor=principal.actor, action="api_key.revoked", target_type="api_key",
            target_id=str(row.id), details={"prefix": row.prefix}, ip=client_ip(request),
        )  # fmt: skip
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=list[UserPublic])
def list_users(principal: Admin) -> list[UserPublic]:
    """Every user with their role (admins only)."""
    with db_session() as session:
        return [UserPublic.model_validate(u) for u in users.list_users(session)]


@router.patch("/users/{user_id}", response_model=UserPublic, responses={404: {}, 409: {}})
def update_user(user_id: uuid.UUID, body: UserUpdate, principal: Admin, request: Request) -> UserPublic:
    """Change a user's role or deactivate them (admins only); the change applies at once."""
    with db_session() as session:
        try:
            changed = users.change_user(session, user_id, role=body.role, is_active=body.is_active)
        except users.UserError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
        if changed is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"user {user_id} not found")
        user, changes = changed
        if changes:
            audit.record(
                session, actor=principal.actor, action="user.role_changed" if "role" in changes else "user.updated",
                target_type="user", target_id=str(user.id), details=changes, ip=client_ip(request),
            )  # fmt: skip
        public = UserPublic.model_validate(user)
    session_cache.clear()
    return public


@router.get("/audit", response_model=list[AuditPublic])
def read_audit(
    principal: Admin,
    action: str = Query("", max_length=100),
    actor: str = Query("", max_length=320),
    limit: int = Query(100, ge=1, le=1000),
) -> list[AuditPublic]:
    """The audit log, newest first (admins only)."""
    with db_session() as session:
        return [
            AuditPublic.model_validate(e)
            for e in audit.entries(session, limit=limit, action=action, actor=actor)
        ]


# ---------------------------------------------------------------------------------------------


class OAuthStateCookie:
    """Starlette's SessionMiddleware for /auth only: holds state, nonce and PKCE verifier for 10 minutes.

    Built on first use, so importing the API does not need the secret key yet.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/auth/"):
            await self.app(scope, receive, send)
            return
        if self._inner is None:
            self._inner = SessionMiddleware(
                self.app, secret_key=sessions.derived_key("oauth-state"), session_cookie=OAUTH_COOKIE,
                max_age=OAUTH_COOKIE_MAX_AGE_S, path="/auth", same_site="lax",
            )  # fmt: skip
        await self._inner(scope, receive, send)


def install(api: FastAPI) -> None:
    """Add the sign-in and access routes, the OAuth state cookie and the auth gate to `api`."""
    api.include_router(auth_router)
    api.include_router(router, prefix=routes.API_PREFIX)
    api.add_middleware(OAuthStateCookie)
    api.add_middleware(AuthMiddleware, router=api.router)  # added last: runs first
