"""OIDC group claims give workspace roles, per provider, against the real provider (node-oidc-provider):
each sign-in gives the best role the user's groups grant in each mapped workspace, and takes them
out of a mapped workspace when no group grants it any more."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from app.api.main import api
from app.db import db_session
from engine import workspaces
from engine.settings import get_settings
from models.auth import User
from models.workspaces import Workspace, WorkspaceMember
from tests.integration.test_auth_oidc import CALLBACK, provider, start_login  # noqa: F401 - fixture
from tests.oidc import provider as oidc


@pytest.fixture
def mapped_sso(auth_env, provider, monkeypatch: pytest.MonkeyPatch):  # noqa: F811 - the imported fixture
    grants = [
        {"group": "data-team", "workspace": "data", "role": "editor"},
        {"group": "data-leads", "workspace": "data", "role": "admin"},
        {"group": "auditors", "workspace": "data", "role": "viewer"},
        {"group": "anyone", "workspace": "not-created-yet", "role": "viewer"},
    ]
    monkeypatch.setenv(
        "FLOWLOOM_OIDC_PROVIDERS", json.dumps([{**provider.settings("test"), "workspace_roles": grants}])
    )
    get_settings.cache_clear()
    with db_session() as session:
        workspaces.create_workspace(session, slug="data", name="Data", actor="test")
        workspaces.create_workspace(session, slug="manual", name="Manual", actor="test")
        session.commit()
    return provider


def sign_in(login: str) -> TestClient:
    client = TestClient(api)
    done = client.get(
        oidc.login_at_provider(start_login(client), login, until=CALLBACK), follow_redirects=False
    )
    assert done.status_code == 303, done.text
    return client


def role_in(slug: str, login: str) -> str | None | bool:
    with db_session() as session:
        ws = session.exec(select(Workspace).where(Workspace.slug == slug)).one()
        user = session.exec(select(User).where(User.email == f"{login}@example.test")).one()
        member = session.get(WorkspaceMember, (ws.id, user.id))
        return False if member is None else member.role


def test_group_claims_map_to_workspace_roles_on_every_sign_in(mapped_sso) -> None:
    mapped_sso.set_groups("dana", ["data-team", "auditors", "unrelated"])
    client = sign_in("dana")
    assert role_in("data", "dana") == "editor"  # the best of editor and viewer
    assert role_in("manual", "dana") is False  # not named by the mapping: untouched
    data = next(w for w in client.get("/api/workspaces").json()["workspaces"] if w["slug"] == "data")
    assert data["role"] == "editor"

    mapped_sso.set_groups("dana", ["data-team", "data-leads"])
    sign_in("dana")
    assert role_in("data", "dana") == "admin"

    # A workspace admin added her to "manual" by hand: the provider leaves that alone, but when
    # her groups no longer grant "data", she is out of it at the next sign-in.
    with db_session() as session:
        ws = session.exec(select(Workspace).where(Workspace.slug == "manual")).one()
        user = session.exec(select(User).where(User.email == "dana@example.test")).one()
        workspaces.set_member(session, ws.id, user.id, "operator", actor="test")
        session.commit()
    mapped_sso.set_groups("dana", [])
    client = sign_in("dana")
    assert role_in("data", "dana") is False
    assert role_in("manual", "dana") == "operator"
    assert {w["slug"] for w in client.get("/api/workspaces").json()["workspaces"]} == {"default", "manual"}
