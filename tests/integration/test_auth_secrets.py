"""Secrets (passwords, API keys, session cookies, OIDC client secrets) never show up in logs, API
answers or exports: everything is captured while they are used, then searched for them."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.api.main import api
from app.auth import local, sessions
from app.db import db_session
from engine.settings import get_settings
from models.db import get_engine

PASSWORD = "a very secret local password"
CLIENT_SECRET = "oidc-client-secret-7f3a9c1e5b"
STORED_SECRET = "sk-stored-secret-0c41d7e2aa"
ROTATED_SECRET = "sk-rotated-secret-93be51f07d"


def _seen(response) -> str:
    return f"{response.status_code}\n{json.dumps(dict(response.headers))}\n{response.text}"


def test_secrets_never_reach_logs_responses_audit_or_the_database_in_clear(
    auth_env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(
        "FLOWLOOM_OIDC_PROVIDERS",
        json.dumps(
            [
                {
                    "name": "corp",
                    "issuer": "http://127.0.0.1:9/",
                    "client_id": "app",
                    "client_secret": CLIENT_SECRET,
                }
            ]
        ),
    )
    get_settings.cache_clear()
    caplog.set_level(logging.DEBUG)
    with db_session() as session:
        local.set_password(session, "root@example.test", PASSWORD, actor="test")

    seen: list[str] = []
    browser = TestClient(api)
    signed_in = browser.post(
        "/auth/local", data={"email": "root@example.test", "password": PASSWORD}, follow_redirects=False
    )
    cookie = signed_in.cookies[sessions.COOKIE_NAME]
    seen.append(signed_in.text)  # its Set-Cookie header is the one place the cookie belongs
    seen.append(
        _seen(browser.post("/auth/local", data={"email": "root@example.test", "password": PASSWORD + "x"}))
    )

    created = browser.post("/api/keys", json={"name": "automation", "role": "admin"})
    key = created.json()["key"]  # the one answer that shows the key, once
    keyed = TestClient(api, headers={"Authorization": f"Bearer {key}"})
    wrong = TestClient(api, headers={"Authorization": f"Bearer {key[:-1]}X"})
    for client, path in [
        (keyed, "/api/me"), (keyed, "/api/keys"), (keyed, "/api/users"), (keyed, "/api/audit?limit=1000"),
        (keyed, "/api/workflows"), (keyed, "/api/openapi.json"), (browser, "/api/keys"), (browser, "/api/me"),
        (wrong, "/api/me"), (browser, "/auth/login/corp"), (browser, "/login"),
    ]:  # fmt: skip
        seen.append(_seen(client.get(path, follow_redirects=False)))
    seen.append(_seen(keyed.post("/api/keys", json={"name": "nested"})))
    # Secrets: created, listed, rotated, refused for bad input; the value never comes back.
    body = {"name": "openai", "value": STORED_SECRET, "allowed_destinations": ["api.openai.com"]}
    seen.append(_seen(keyed.post("/api/secrets", json=body)))
    seen.append(_seen(keyed.post("/api/secrets", json=body)))  # 409
    seen.append(_seen(keyed.post("/api/secrets", json={"value": STORED_SECRET})))  # 422, no name
    seen.append(_seen(keyed.post("/api/secrets", json={**body, "name": "x", "extra": STORED_SECRET})))
    seen.append(_seen(keyed.put("/api/secrets/openai", json={"value": ROTATED_SECRET})))
    seen.append(_seen(keyed.put("/api/secrets/openai", json={"value": ROTATED_SECRET, "bogus": 1})))
    seen.append(_seen(keyed.get("/api/secrets")))
    seen.append(_seen(browser.post("/auth/logout", follow_redirects=False)))
    seen.append(_seen(keyed.get("/api/audit?limit=1000")))

    with get_engine(get_settings().database_url).connect() as conn:
        for table in ("audit_log", "users", "api_keys", "secrets"):
            rows = conn.execute(text(f"SELECT row_to_json(t)::text FROM {table} t")).scalars().all()
            seen.append("\n".join(rows))
    logs = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    everything = "\n".join(seen + logs)

    for name, secret in {"password": PASSWORD, "API key": key, "session cookie": cookie,
                         "client secret": CLIENT_SECRET, "stored secret": STORED_SECRET,
                         "rotated secret": ROTATED_SECRET}.items():  # fmt: skip
        assert secret not in everything, f"the {name} leaked"
    assert '"secret.created"' in everything and '"secret.rotated"' in everything  # audited, without values
    assert key.split("_")[1] in everything  # the key's public prefix is shown, so the search did look
    assert "root@example.test" in everything
