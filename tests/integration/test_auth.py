"""Sessions, the local admin, API keys, roles and the audit log, through the real API app and database."""

from __future__ import annotations

import os
import stat
import uuid

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlmodel import select

from app import cli as flowloom_cli
from app.api.main import api, create_api
from app.auth import api_keys, local, sessions
from app.db import db_session
from engine.settings import get_settings
from models.auth import ApiKey, AuditLog, User

PASSWORD = "correct horse battery staple"


@pytest.fixture
def local_admin(auth_env) -> User:
    with db_session() as session:
        return local.set_password(session, "admin@example.test", PASSWORD, actor="test")


def sign_in(client: TestClient, email: str = "admin@example.test", password: str = PASSWORD, **form):
    return client.post(
        "/auth/local", data={"email": email, "password": password, **form}, follow_redirects=False
    )


def with_cookie(token: str) -> TestClient:
    client = TestClient(api)
    client.cookies.set(sessions.COOKIE_NAME, token)
    return client


def audit_actions() -> list[str]:
    with db_session() as session:
        return [e.action for e in session.exec(select(AuditLog).order_by(AuditLog.id))]


def test_anonymous_api_request_is_401_and_roles_decide_the_rest(auth_env, api_client) -> None:
    anonymous = TestClient(api)
    assert anonymous.get("/api/workflows").status_code == 401
    assert anonymous.post("/api/workflows", json={"name": "x"}).status_code == 401

    viewer, editor = api_client("viewer"), api_client("editor")
    assert viewer.get("/api/workflows").status_code == 200
    refused = viewer.post("/api/workflows", json={"name": "x"})
    assert refused.status_code == 403 and "editor" in refused.json()["detail"]
    assert editor.post("/api/workflows", json={"name": "x"}).status_code == 201
    assert anonymous.get("/api/health").status_code in (200, 503)  # public


def test_route_missing_from_the_policy_is_refused_even_for_admins(auth_env, api_client) -> None:
    app = create_api()
    extra = APIRouter()

    @extra.get("/api/unlisted")
    def unlisted() -> dict:
        return {"leak": True}

    app.include_router(extra)
    admin_key = api_client("admin").api_key
    response = TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}).get("/api/unlisted")
    assert response.status_code == 403
    assert "not in the access policy" in response.json()["detail"]


def test_local_sign_in_sets_a_signed_httponly_lax_cookie_and_me_answers(local_admin) -> None:
    client = TestClient(api)
    response = sign_in(client, next="/inbox")
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{sessions.COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here
    me = client.get("/api/me").json()
    assert me["email"] == "admin@example.test" and me["role"] == "admin" and me["via"] == "session"
    assert audit_actions()[-1] == "auth.sign_in"


def test_cookie_is_secure_over_https(local_admin) -> None:
    response = sign_in(TestClient(api, base_url="https://testserver"))
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_unknown_user_and_open_redirects_are_refused(local_admin) -> None:
    client = TestClient(api)
    bad = sign_in(client, password="not the password")
    assert bad.status_code == 303 and bad.headers["location"].endswith("error=bad_credentials")
    assert "set-cookie" not in bad.headers
    assert sign_in(client, email="nobody@example.test").headers["location"].endswith("error=bad_credentials")
    assert client.get("/api/me").status_code == 401
    for evil in ("https://evil.example", "//evil.example", "/\\evil.example"):
        assert sign_in(client, next=evil).headers["location"] == "/"
    assert "auth.sign_in_failed" in audit_actions()


def test_tampered_or_forged_session_cookie_is_refused(local_admin) -> None:
    client = TestClient(api)
    token = sign_in(client).cookies[sessions.COOKIE_NAME]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert with_cookie(tampered).get("/api/me").status_code == 401
    assert with_cookie("e30.forged.sig").get("/api/me").status_code == 401
    assert with_cookie(token).get("/api/me").status_code == 200


def test_sign_out_revokes_the_session_so_a_copied_cookie_stops_working(local_admin) -> None:
    client = TestClient(api)
    token = sign_in(client).cookies[sessions.COOKIE_NAME]
    out = client.post("/auth/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login?signed_out=1"
    assert (
        f'{sessions.COOKIE_NAME}=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    )
    assert with_cookie(token).get("/api/me").status_code == 401
    assert "auth.sign_out" in audit_actions()


def test_cross_site_requests_with_the_session_cookie_are_refused(local_admin, make_user) -> None:
    client = TestClient(api)
    sign_in(client)
    evil = client.post("/api/keys", json={"name": "x"}, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["detail"]
    same = client.post("/api/keys", json={"name": "x"}, headers={"Origin": "http://testserver"})
    assert same.status_code == 201
    # Reading with the cookie from another site (another port is "same-site" for SameSite=Lax).
    read = client.get("/api/me", headers={"Origin": "http://testserver:8081"})
    assert read.status_code == 403
    keyed = TestClient(
        api, headers={"Authorization": f"Bearer {same.json()['key']}", "Origin": "https://tool.example"}
    )
    assert keyed.get("/api/me").status_code == 200  # a key is not sent by browsers on their own


def test_deactivated_user_and_role_changes_apply_at_once(local_admin, make_user) -> None:
    admin = TestClient(api)
    sign_in(admin)
    bob = make_user("viewer", "bob@example.test")
    with db_session() as session:
        _, key = api_keys.create(session, bob, name="bob", role="viewer")
    bob_client = TestClient(api, headers={"Authorization": f"Bearer {key}"})
    assert bob_client.get("/api/me").json()["role"] == "viewer"

    changed = admin.patch(f"/api/users/{bob.id}", json={"role": "editor"})
    assert changed.status_code == 200 and changed.json()["role"] == "editor"
    # The key keeps its own (viewer) scope even though its owner is now an editor.
    assert bob_client.get("/api/me").json()["role"] == "viewer"
    assert admin.patch(f"/api/users/{bob.id}", json={"is_active": False}).status_code == 200
    assert bob_client.get("/api/me").status_code == 401
    assert {"user.role_changed", "user.updated"} <= set(audit_actions())

    viewer = TestClient(api, headers={"Authorization": f"Bearer {api_keys_for('viewer', make_user)}"})
    assert viewer.patch(f"/api/users/{bob.id}", json={"role": "admin"}).status_code == 403
    assert viewer.get("/api/audit").status_code == 403


def api_keys_for(role: str, make_user) -> str:
    user = make_user(role)
    with db_session() as session:
        return api_keys.create(session, user, name=role, role=role)[1]


def test_last_admin_cannot_be_demoted_or_deactivated(local_admin) -> None:
    admin = TestClient(api)
    sign_in(admin)
    for change in ({"role": "viewer"}, {"is_active": False}):
        refused = admin.patch(f"/api/users/{local_admin.id}", json=change)
        assert refused.status_code == 409 and "last active admin" in refused.json()["detail"]


def test_api_key_is_shown_once_stored_hashed_scoped_and_revocable(local_admin) -> None:
    client = TestClient(api)
    sign_in(client)
    created = client.post("/api/keys", json={"name": "ci", "role": "operator", "rate_limit_per_min": 50})
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith("flk_") and len(key) > 40 and body["role"] == "operator"

    listed = client.get("/api/keys").text
    assert key not in listed and "key_hash" not in listed and body["prefix"] in listed
    with db_session() as session:
        row = session.get(ApiKey, uuid.UUID(body["id"]))
        assert row.key_hash == api_keys.hash_key(key) and key not in row.key_hash

    keyed = TestClient(api, headers={"Authorization": f"Bearer {key}"})
    assert keyed.get("/api/me").json() == {
        **keyed.get("/api/me").json(),
        "role": "operator",
        "via": "api_key",
    }
    assert keyed.get("/api/users").status_code == 403  # the key's role, not its admin owner's
    assert keyed.post("/api/keys", json={"name": "more"}).status_code == 403  # keys cannot make keys

    assert client.delete(f"/api/keys/{body['id']}").status_code == 204
    assert keyed.get("/api/me").status_code == 401
    assert {"api_key.created", "api_key.revoked"} <= set(audit_actions())


def test_key_role_cannot_exceed_its_owner_and_others_keys_are_404(auth_env, api_client) -> None:
    viewer = api_client("viewer")
    with db_session() as session:
        owner = session.get(User, viewer.user.id)
        with pytest.raises(api_keys.ApiKeyError, match="cannot create a key with the admin role"):
            api_keys.create(session, owner, name="up", role="admin")
    other = api_client("editor")
    other_key_id = other.get("/api/keys").json()[0]["id"]
    assert viewer.delete(f"/api/keys/{other_key_id}").status_code == 404
    assert other.get("/api/me").status_code == 200


def test_api_key_rate_limit_answers_429_with_retry_after(local_admin) -> None:
    client = TestClient(api)
    sign_in(client)
    key = client.post("/api/keys", json={"name": "slow", "rate_limit_per_min": 3}).json()["key"]
    keyed = TestClient(api, headers={"Authorization": f"Bearer {key}"})
    codes = [keyed.get("/api/me").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = keyed.get("/api/me")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_unknown_or_malformed_bearer_is_401(auth_env) -> None:
    for value in ("Bearer flk_deadbeef_nope", "Bearer nonsense", "Bearer " + "x" * 5000):
        response = TestClient(api, headers={"Authorization": value}).get("/api/workflows")
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"


def test_first_run_setup_needs_the_code_and_works_only_once(auth_env) -> None:
    client = TestClient(api)
    path = local.ensure_setup_code()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    form = {"email": "owner@example.test", "password": PASSWORD, "password_again": PASSWORD}

    wrong = client.post("/auth/setup", data={**form, "code": "guess"}, follow_redirects=False)
    assert wrong.headers["location"].endswith("error=setup_code")
    short = client.post(
        "/auth/setup", data={**form, "code": path.read_text(), "password": "short", "password_again": "short"},
        follow_redirects=False,
    )  # fmt: skip
    assert short.headers["location"].endswith("error=password_short")

    ok = client.post("/auth/setup", data={**form, "code": path.read_text()}, follow_redirects=False)
    assert ok.status_code == 303 and sessions.COOKIE_NAME in ok.headers["set-cookie"]
    assert client.get("/api/me").json()["role"] == "admin"
    assert not path.exists()

    again = TestClient(api).post("/auth/setup", data={**form, "code": "x"}, follow_redirects=False)
    assert again.headers["location"].endswith("error=setup_done")
    with db_session() as session:
        assert all(
            u.password_hash and u.password_hash.startswith("$argon2") for u in session.exec(select(User))
        )


def test_generated_secret_key_is_kept_in_the_data_dir_with_mode_0600(
    auth_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWLOOM_SECRET_KEY")
    get_settings.cache_clear()
    key = sessions.secret_key()
    path = get_settings().resolved_data_dir / sessions.SECRET_FILE
    assert path.read_text() == key and len(key) >= sessions.MIN_SECRET_LENGTH
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sessions.secret_key() == key


def test_cli_sets_the_local_admin_password(auth_env, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert flowloom_cli.main(["set-password", "ops@example.test", "--password-stdin"]) == 0
    assert PASSWORD not in capsys.readouterr().out
    assert sign_in(TestClient(api), "ops@example.test").status_code == 303
    assert sign_in(TestClient(api), "ops@example.test").headers["location"] == "/"


def test_event_socket_from_another_site_is_closed(auth_env) -> None:
    from starlette.websockets import WebSocketDisconnect

    client = TestClient(api)
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(
            "/_event/?EIO=4&transport=websocket", headers={"Origin": "https://evil.example"}
        ):
            pass
    assert refused.value.code == 1008
    with pytest.raises(WebSocketDisconnect) as elsewhere:
        with client.websocket_connect("/not-the-event-socket"):
            pass
    assert elsewhere.value.code == 1008
