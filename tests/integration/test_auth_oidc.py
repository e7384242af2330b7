"""OpenID Connect sign-in against a real provider (node-oidc-provider), without a browser.

The app runs in-process (TestClient, http://testserver); the provider is a real node process. Each
test walks the provider's login and consent forms and brings the callback back to the app, after
tampering with what an attacker could tamper with.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from app.api.main import api
from app.auth import sessions
from app.db import db_session
from engine.settings import get_settings
from models.auth import AuditLog, User
from tests.oidc import provider as oidc

CALLBACK = "http://testserver/auth/callback/test"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[oidc.OIDCProviderProcess]:
    running = oidc.start([CALLBACK], tmp_path_factory.mktemp("oidc"))
    yield running
    running.stop()


@pytest.fixture
def sso(auth_env, provider, monkeypatch: pytest.MonkeyPatch) -> oidc.OIDCProviderProcess:
    """The app configured with the provider as "test", and alice@example.test as an admin."""
    monkeypatch.setenv("FLOWLOOM_OIDC_PROVIDERS", json.dumps([provider.settings("test")]))
    monkeypatch.setenv("FLOWLOOM_ADMIN_EMAILS", json.dumps(["alice@example.test"]))
    get_settings.cache_clear()
    return provider


def start_login(client: TestClient, next_path: str = "") -> str:
    response = client.get(f"/auth/login/test?next={quote(next_path)}", follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def replace_param(url: str, name: str, value: str) -> str:
    old = oidc.query_param(url, name)
    assert old, f"{name} missing from {url}"
    return url.replace(f"{name}={old}", f"{name}={value}")


def audit_reasons() -> list[str]:
    with db_session() as session:
        rows = session.exec(select(AuditLog).where(AuditLog.action == "auth.sign_in_failed"))
        return [r.details["reason"] for r in rows]


def test_sign_in_uses_pkce_state_and_nonce_and_creates_the_user_once(sso) -> None:
    client = TestClient(api)
    authorize = start_login(client, "/inbox")
    assert authorize.startswith(sso.issuer + "/auth?")
    for param in ("state", "nonce", "code_challenge"):
        assert oidc.query_param(authorize, param)
    assert oidc.query_param(authorize, "code_challenge_method") == "S256"

    callback = oidc.login_at_provider(authorize, "alice", until=CALLBACK)
    done = client.get(callback, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/inbox"
    assert "HttpOnly" in done.headers["set-cookie"]
    me = client.get("/api/me").json()
    assert me["email"] == "alice@example.test" and me["role"] == "admin"  # named in admin_emails

    # A second sign-in finds the same user (unique by issuer + subject).
    again = TestClient(api)
    again.get(oidc.login_at_provider(start_login(again), "alice", until=CALLBACK))
    with db_session() as session:
        users = session.exec(select(User).where(User.email == "alice@example.test")).all()
    assert len(users) == 1 and users[0].issuer == sso.issuer and users[0].subject == "alice"


def test_user_not_named_as_admin_starts_as_viewer(sso) -> None:
    client = TestClient(api)
    client.get(oidc.login_at_provider(start_login(client), "bob", until=CALLBACK))
    me = client.get("/api/me").json()
    assert me["email"] == "bob@example.test" and me["role"] == "viewer"
    assert client.post("/api/workflows", json={"name": "x"}).status_code == 403


def test_tampered_state_is_refused(sso) -> None:
    client = TestClient(api)
    callback = oidc.login_at_provider(start_login(client), "mallory", until=CALLBACK)
    refused = client.get(replace_param(callback, "state", "forged-state"), follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"] == "/login?error=state"
    assert sessions.COOKIE_NAME not in refused.headers.get("set-cookie", "")
    assert client.get("/api/me").status_code == 401
    assert "state" in audit_reasons()


def test_callback_without_the_login_cookie_is_refused(sso) -> None:
    """A callback URL carried to another browser (login CSRF) has no matching state there."""
    victim_callback = oidc.login_at_provider(start_login(TestClient(api)), "mallory", until=CALLBACK)
    other_browser = TestClient(api)
    refused = other_browser.get(victim_callback, follow_redirects=False)
    assert refused.headers["location"] == "/login?error=state"
    assert other_browser.get("/api/me").status_code == 401


def test_tampered_nonce_is_refused(sso) -> None:
    client = TestClient(api)
    authorize = replace_param(start_login(client), "nonce", "attacker-chosen-nonce")
    callback = oidc.login_at_provider(authorize, "mallory", until=CALLBACK)
    refused = client.get(callback, follow_redirects=False)
    assert refused.headers["location"] == "/login?error=id_token"
    assert client.get("/api/me").status_code == 401
    assert "id_token" in audit_reasons()


def test_callback_naming_another_issuer_is_refused(sso) -> None:
    client = TestClient(api)
    callback = oidc.login_at_provider(start_login(client), "mallory", until=CALLBACK)
    refused = client.get(
        replace_param(callback, "iss", quote("https://evil.example", safe="")), follow_redirects=False
    )
    assert refused.headers["location"] == "/login?error=issuer"


def test_replayed_code_is_refused(sso) -> None:
    client = TestClient(api)
    authorize = start_login(client)
    callback = oidc.login_at_provider(authorize, "carol", until=CALLBACK)
    assert client.get(callback, follow_redirects=False).status_code == 303
    replay = TestClient(api)
    replay.cookies.update(client.cookies)
    refused = replay.get(callback, follow_redirects=False)
    assert refused.headers["location"].startswith("/login?error=")


def test_unknown_provider_and_provider_errors_go_back_to_login(sso) -> None:
    client = TestClient(api)
    unknown = client.get("/auth/login/nope", follow_redirects=False)
    assert unknown.headers["location"] == "/login?error=unknown_provider"
    start_login(client)
    denied = client.get("/auth/callback/test?error=access_denied&state=x", follow_redirects=False)
    assert denied.headers["location"].startswith("/login?error=")


def test_client_secret_never_reaches_logs_or_responses(sso, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = TestClient(api)
    seen = [client.get("/login", follow_redirects=False).text]
    authorize = start_login(client)
    callback = oidc.login_at_provider(authorize, "alice", until=CALLBACK)
    done = client.get(callback, follow_redirects=False)
    seen += [authorize, callback, done.text, json.dumps(dict(done.headers)), client.get("/api/me").text]
    seen += [client.get("/api/openapi.json").text]
    text = "\n".join(seen) + "\n".join(r.getMessage() for r in caplog.records)
    assert sso.client_secret not in text


def _registry(*providers: dict):
    from app.auth.oidc import Registry
    from engine.settings import Settings

    return Registry(Settings(oidc_providers=list(providers)))


def test_presets_point_at_the_right_endpoints() -> None:
    registry = _registry(
        {"name": "google", "preset": "google", "client_id": "g"},
        {"name": "entra", "preset": "microsoft", "tenant": "contoso-tenant-id", "client_id": "m"},
        {"name": "github", "preset": "github", "client_id": "h"},
        {"name": "corp", "issuer": "https://id.example.com/", "client_id": "c"},
    )
    clients = {name: registry.oauth.create_client(name) for name in ("google", "entra", "github", "corp")}
    assert (
        clients["google"]._server_metadata_url
        == "https://accounts.google.com/.well-known/openid-configuration"
    )
    assert clients["entra"]._server_metadata_url == (
        "https://login.microsoftonline.com/contoso-tenant-id/v2.0/.well-known/openid-configuration"
    )
    assert clients["github"].authorize_url == "https://github.com/login/oauth/authorize"
    assert clients["corp"]._server_metadata_url == "https://id.example.com/.well-known/openid-configuration"
    for client in clients.values():
        assert client.client_kwargs["code_challenge_method"] == "S256"
    assert [p.label for p in registry.listed()] == ["Google", "Microsoft", "GitHub", "Corp"]


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({"name": "entra", "preset": "microsoft", "client_id": "m"}, "set tenant"),
        ({"name": "entra", "preset": "microsoft", "tenant": "common", "client_id": "m"}, "set tenant"),
        ({"name": "corp", "issuer": "http://id.example.com", "client_id": "c"}, "must be an https URL"),
        ({"name": "Bad Name", "issuer": "https://id.example.com", "client_id": "c"}, "lowercase"),
        ({"name": "x", "preset": "okta", "client_id": "c"}, "is not one of"),
        ({"name": "x", "issuer": "https://id.example.com", "client_id": ""}, "client_id is empty"),
    ],
)
def test_unsafe_or_incomplete_provider_settings_are_refused(provider: dict, message: str) -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        _registry(provider)
