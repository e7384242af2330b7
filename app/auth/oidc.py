"""Sign-in providers: generic OpenID Connect by issuer URL, and presets for Google, Microsoft Entra
and GitHub (OAuth 2.0, not OIDC). authlib does discovery, PKCE (S256), state, nonce and the
id_token's signature and claims; this module adds the checks authlib leaves out (the callback's
`iss`, an id_token being present at all) and turns a provider's answer into an `Identity`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.starlette_client import OAuth
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from app.db import db_session
from engine import workspaces
from engine.errors import ConfigError, ErrorCode, FlowloomError
from engine.settings import OIDCProvider, Settings, get_settings
from models.auth import UsedOidcState

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
OIDC_SCOPE = "openid email profile"
GITHUB_ISSUER = "https://github.com"
PRESET_LABELS = {"google": "Google", "microsoft": "Microsoft", "github": "GitHub"}
# How long a used state is remembered: longer than authlib keeps state data (1 h) in the cookie.
USED_STATE_KEPT = timedelta(hours=2)


class SignInError(FlowloomError):
    """A sign-in was refused; `code` is what /login?error=<code> shows (never provider text)."""

    code = ErrorCode.PROVIDER_REFUSED

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    name: str
    groups: tuple[str, ...] = ()  # the provider's group claim (FLOWLOOM_OIDC_PROVIDERS groups_claim)


def claim_is_true(value: object) -> bool:
    """An `email_verified` claim as OIDC providers send it: true, or the string "true"; missing = False."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@dataclass(frozen=True)
class ProviderInfo:
    """A provider as the login page lists it."""

    name: str
    label: str


def claim_state(state: str) -> bool:
    """Record that a callback with `state` is being completed; False when one already was (a replay).

    One INSERT ... ON CONFLICT DO NOTHING: of two callbacks racing with the same state, one wins.
    """
    now = datetime.now(UTC)
    digest = hashlib.sha256(state.encode()).hexdigest()
    with db_session() as session:
        inserted = session.execute(
            insert(UsedOidcState)
            .values(state_hash=digest, used_at=now, expires_at=now + USED_STATE_KEPT)
            .on_conflict_do_nothing(index_elements=["state_hash"])
            .returning(UsedOidcState.state_hash)
        ).first()
        session.execute(delete(UsedOidcState).where(UsedOidcState.expires_at < now))
    return inserted is not None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_issuer(provider: OIDCProvider) -> str:
    issuer = provider.issuer.rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
        return issuer
    raise ConfigError(
        f"FLOWLOOM_OIDC_PROVIDERS: provider {provider.name!r}: issuer {provider.issuer!r} must be an "
        "https URL (plain http only for a provider on this machine)"
    )


def _client_settings(provider: OIDCProvider) -> dict[str, Any]:
    """authlib `register` arguments for one configured provider."""
    if not _NAME.match(provider.name):
        raise ConfigError(
            f"FLOWLOOM_OIDC_PROVIDERS: name {provider.name!r}: use 1-40 lowercase letters, digits, - or _"
        )
    if not provider.client_id:
        raise ConfigError(f"FLOWLOOM_OIDC_PROVIDERS: provider {provider.name!r}: client_id is empty")
    oidc_kwargs = {"scope": OIDC_SCOPE, "code_challenge_method": "S256"}
    preset = provider.preset.lower()
    if preset == "github":
        return {
            "authorize_url": "https://github.com/login/oauth/authorize",
            "access_token_url": "https://github.com/login/oauth/access_token",
            "api_base_url": "https://api.github.com/",
            "client_kwargs": {"scope": "read:user user:email", "code_challenge_method": "S256"},
        }
    if preset == "google":
        url = "https://accounts.google.com/.well-known/openid-configuration"
    elif preset == "microsoft":
        tenant = provider.tenant.strip()
        if not tenant or tenant in ("common", "organizations", "consumers"):
            raise ConfigError(
                f"FLOWLOOM_OIDC_PROVIDERS: provider {provider.name!r}: set tenant to your Entra tenant id; "
                "multi-tenant endpoints cannot be checked against one issuer"
            )
        url = f"https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
    elif preset == "":
        url = _check_issuer(provider) + "/.well-known/openid-configuration"
    else:
        raise ConfigError(
            f"FLOWLOOM_OIDC_PROVIDERS: provider {provider.name!r}: preset {provider.preset!r} is not one of "
            "google, microsoft, github (or empty for any OpenID provider by issuer)"
        )
    return {"server_metadata_url": url, "client_kwargs": oidc_kwargs}


class Registry:
    """The configured providers as authlib clients."""

    def __init__(self, settings: Settings) -> None:
        self.oauth = OAuth()
        self.providers: dict[str, OIDCProvider] = {}
        for provider in settings.oidc_providers:
            if provider.name in self.providers:
                raise ConfigError(f"FLOWLOOM_OIDC_PROVIDERS: two providers are named {provider.name!r}")
            self.oauth.register(
                name=provider.name,
                client_id=provider.client_id,
                client_secret=provider.client_secret.get_secret_value(),
                **_client_settings(provider),
            )
            self.providers[provider.name] = provider

    def listed(self) -> list[ProviderInfo]:
        """Providers for the login page's buttons."""
        return [
            ProviderInfo(p.name, PRESET_LABELS.get(p.preset.lower(), p.name.replace("-", " ").title()))
            for p in self.providers.values()
        ]

    def _client(self, name: str):
        if name not in self.providers:
            raise SignInError(ErrorCode.UNKNOWN_PROVIDER, f"no sign-in provider is named {name!r}")
        return self.oauth.create_client(name)

    def is_github(self, name: str) -> bool:
        return self.providers[name].preset.lower() == "github"

    async def begin(self, request: Request, name: str, redirect_uri: str) -> Response:
        """The redirect to the provider (state, nonce and PKCE verifier kept in the OAuth cookie)."""
        client = self._client(name)
        try:
            return await client.authorize_redirect(request, redirect_uri)
        except Exception as exc:  # discovery failed: the provider is down or misconfigured
            log.warning("sign-in with %s could not start: %s", name, type(exc).__name__)
            raise SignInError(
                ErrorCode.PROVIDER_UNAVAILABLE, f"the provider {name!r} did not answer"
            ) from exc

    async def finish(self, request: Request, name: str) -> Identity:
        """Check the callback and exchange the code; the identity the provider vouches for."""
        client = self._client(name)
        state = request.query_params.get("state", "")
        # Only a state this browser's OAuth cookie holds is recorded (authlib refuses the others
        # below); it is recorded before the code goes to the provider, so a replay never gets there.
        if state and await client.framework.get_state_data(request.session, state):
            if not await run_in_threadpool(claim_state, state):
                raise SignInError(ErrorCode.STATE, "this sign-in answer was already used; sign in again")
        github = self.is_github(name)
        issuer = GITHUB_ISSUER
        if not github:
            metadata = await client.load_server_metadata()
            issuer = metadata.get("issuer", "")
            given_iss = request.query_params.get("iss")
            if given_iss is not None and given_iss != issuer:  # RFC 9207: authlib does not check it
                raise SignInError(
                    ErrorCode.ISSUER, f"the callback names issuer {given_iss!r}, expected {issuer!r}"
                )
        try:
            token = await client.authorize_access_token(request)
        except MismatchingStateError as exc:
            raise SignInError(ErrorCode.STATE, "the sign-in state does not match; start again") from exc
        except OAuthError as exc:
            log.warning("sign-in with %s refused: %s", name, exc.error or type(exc).__name__)
            raise SignInError(ErrorCode.PROVIDER_REFUSED, "the provider refused the sign-in") from exc
        except Exception as exc:  # id_token signature, nonce, audience, expiry; network errors
            log.warning("sign-in with %s failed: %s", name, type(exc).__name__)
            raise SignInError(ErrorCode.ID_TOKEN, "the provider's answer did not check out") from exc
        if github:
            return await self._github_identity(client, token)
        claims = token.get("userinfo")
        if not claims or not claims.get("sub"):
            raise SignInError(ErrorCode.ID_TOKEN, "the provider sent no id_token")
        if claims.get("iss") != issuer:
            raise SignInError(ErrorCode.ISSUER, "the id_token names another issuer")
        email, verified, display = claims.get("email"), claims.get("email_verified"), claims.get("name")
        if not email:
            info = await client.userinfo(token=token)
            if info.get("sub") != claims["sub"]:
                raise SignInError(ErrorCode.ID_TOKEN, "the userinfo answer is about someone else")
            email, verified, display = info.get("email"), info.get("email_verified"), info.get("name")
        groups = workspaces.groups_of(claims, self.providers[name].groups_claim)
        return Identity(
            issuer, str(claims["sub"]), str(email or ""), claim_is_true(verified), str(display or ""), groups
        )

    def workspace_grants(self, name: str) -> list[tuple[str, str, str]]:
        """The provider's (group, workspace short name, role) mapping."""
        provider = self.providers.get(name)
        return [(g.group, g.workspace, g.role) for g in provider.workspace_roles] if provider else []

    async def _github_identity(self, client, token: dict[str, Any]) -> Identity:
        user = (await client.get("user", token=token)).json()
        emails = (await client.get("user/emails", token=token)).json()
        primary = next((e for e in emails if e.get("primary") and e.get("verified")), None)
        return Identity(
            GITHUB_ISSUER,
            str(user["id"]),
            str(primary["email"]) if primary else "",
            primary is not None,
            str(user.get("name") or user.get("login") or ""),
        )


_current: tuple[Settings, Registry] | None = None


def registry() -> Registry:
    """The providers of the current settings (rebuilt when the settings are re-read)."""
    global _current
    settings = get_settings()
    if _current is None or _current[0] is not settings:
        _current = (settings, Registry(settings))
    return _current[1]
