"""Every API route, page and event handler, walked: each has an access rule, anonymous callers are
refused or sent to sign in, and a viewer can neither edit, run nor approve."""

from __future__ import annotations

import asyncio
import re
import uuid
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from reflex.event import Event
from reflex_base.registry import RegistrationContext

import app.app as reflex_app
from app.api.main import api
from app.auth import sessions
from app.auth.guard import AuthState, EventGuard, access_of
from app.auth.middleware import api_routes
from app.auth.policy import PUBLIC, allows, api_access, page_access
from models.workspace_column import DEFAULT_WORKSPACE_ID

ROUTES = api_routes(api.router.routes)
PAGES = sorted("/" if r == "index" else "/" + r for r in reflex_app.app._unevaluated_pages)
HANDLERS = {
    name: registered.handler.fn for name, registered in RegistrationContext.get().event_handlers.items()
}
# What a viewer must not do, by the role each needs (the policy may ask for more, never less).
EDIT_RUN_APPROVE = [
    ("POST", "/api/workflows"),
    ("DELETE", "/api/workflows/{workflow_id}"),
    ("PATCH", "/api/workflows/{workflow_id}"),
    ("POST", "/api/workflows/{workflow_id}/versions"),
    ("POST", "/api/workflows/{workflow_id}/shares"),
    ("DELETE", "/api/workflows/{workflow_id}/shares/{share_id}"),
    ("POST", "/api/runs"),
    ("POST", "/api/workflows/{workflow_id}/runs"),
    ("POST", "/api/runs/{run_id}/cancel"),
    ("POST", "/api/runs/{run_id}/rerun"),
    ("POST", "/api/runs/{run_id}/fork"),
    ("POST", "/api/approvals/{approval_id}/decision"),
]
DATA_HANDLERS = [
    "WorkflowsState.create", "WorkflowsState.rename", "WorkflowsState.delete", "WorkflowsState.duplicate",
    "TemplatesState.use_template", "InboxState.decide", "InboxState.load",
    "WorkflowsState.grant_share", "WorkflowsState.revoke_share",
    # the editor's notes, groups and snippets (app/pages/editor/notes_state.py, snippets_state.py)
    "EditorNotes.annotate", "EditorSnippets.save_snippet", "EditorSnippets.insert_snippet",
    "EditorSnippets.delete_snippet", "EditorSnippets.paste_fragment", "EditorSnippets.set_snippets_open",
]  # fmt: skip


def concrete(template: str) -> str:
    """A path for a route template: ids become fresh uuids, other parameters a word."""
    return re.sub(
        r"\{[^}]*_id\}", lambda _: str(uuid.uuid4()), re.sub(r"\{(?![^}]*_id\})[^}]*\}", "test", template)
    )


def page_path(route: str) -> str:
    return re.sub(r"\[[^\]]+\]", lambda _: str(uuid.uuid4()), route)


def session_client(make_user, role: str) -> TestClient:
    user = make_user(role)
    token, _ = sessions.issue(str(user.id))
    client = TestClient(api)
    client.cookies.set(sessions.COOKIE_NAME, token)
    return client


def test_every_api_route_page_and_handler_has_an_access_rule() -> None:
    missing = [
        f"{m} {r.path}" for r in ROUTES for m in r.methods if m != "HEAD" and api_access(m, r.path) is None
    ]
    missing += [f"page {p}" for p in PAGES if page_access(p) is None]
    missing += [f"handler {fn.__qualname__}" for fn in HANDLERS.values() if access_of(fn) is None]
    assert not missing, "add these to app/auth/policy.py (or `requires` on the handler): " + ", ".join(
        missing
    )
    assert len(ROUTES) >= 20 and len(PAGES) >= 7 and len(HANDLERS) >= 20


@pytest.mark.parametrize(
    ("method", "template"), sorted({(m, r.path) for r in ROUTES for m in r.methods if m != "HEAD"})
)
def test_anonymous_api_request_is_refused_unless_public(auth_env, method: str, template: str) -> None:
    response = TestClient(api).request(method, concrete(template), follow_redirects=False)
    if api_access(method, template) == PUBLIC:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 401, f"{method} {template}: {response.status_code} {response.text}"


@pytest.mark.parametrize(
    ("method", "template"), sorted({(m, r.path) for r in ROUTES for m in r.methods if m != "HEAD"})
)
def test_viewer_gets_only_what_the_policy_gives_viewers(api_client, method: str, template: str) -> None:
    needed = api_access(method, template)
    response = api_client("viewer").request(method, concrete(template), json={}, follow_redirects=False)
    if allows("viewer", needed):
        # The one route that refuses a viewer's API key by design: keys cannot make keys.
        assert response.status_code != 403 or (method, template) == ("POST", "/api/keys"), template
    else:
        assert response.status_code == 403, f"{method} {template}: {response.status_code}"


def test_viewer_cannot_edit_run_or_approve_through_the_api(api_client) -> None:
    viewer = api_client("viewer")
    for method, template in EDIT_RUN_APPROVE:
        assert not allows("viewer", api_access(method, template)), template
        response = viewer.request(method, concrete(template), json={"name": "x", "action": "approved"})
        assert response.status_code == 403, f"{method} {template}"


@pytest.mark.parametrize("route", PAGES)
def test_anonymous_page_request_is_sent_to_sign_in(auth_env, route: str) -> None:
    path = page_path(route)
    response = TestClient(api).get(path, follow_redirects=False)
    if page_access(route) == PUBLIC:
        assert response.status_code not in (303, 401, 403)
    else:
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=" + path.replace("/", "%2F")


@pytest.mark.parametrize("route", PAGES)
def test_signed_in_page_request_passes_only_with_the_role(make_user, route: str) -> None:
    needed = page_access(route)
    for role in ("viewer", "operator", "admin"):
        response = session_client(make_user, role).get(page_path(route), follow_redirects=False)
        if allows(role, needed):
            assert response.status_code not in (303, 401, 403), f"{role} {route}"
        else:
            assert response.status_code == 403, f"{role} {route}"


def test_unlisted_paths_are_not_served_even_to_admins(make_user) -> None:
    admin = session_client(make_user, "admin")
    assert admin.get("/secret-page", follow_redirects=False).status_code == 404
    assert TestClient(api).get("/secret-page", follow_redirects=False).status_code == 303
    assert TestClient(api).get("/assets/app.js").status_code == 404  # static files pass the gate


# ---- event handlers on the /_event socket (app.auth.guard.EventGuard) ----


class FakeState:
    """Just what the guard reads from a Reflex state: the socket's cookie, the path, the auth substate."""

    def __init__(self, cookie: str) -> None:
        self.router = SimpleNamespace(
            headers=SimpleNamespace(cookie=cookie), url=SimpleNamespace(path="/inbox")
        )
        self.substates: dict = {}
        self.auth = SimpleNamespace(_owner="", _show=lambda principal: None)

    async def get_state(self, cls):
        assert cls is AuthState
        return self.auth


def guard_refuses(name: str, cookie: str) -> bool:
    update = asyncio.run(EventGuard().preprocess(reflex_app.app, FakeState(cookie), Event(name=name)))
    return update is not None


def cookie_for(make_user, role: str) -> str:
    token, _ = sessions.issue(str(make_user(role).id))
    return f"other=1; {sessions.COOKIE_NAME}={token}"


def test_guard_refuses_every_non_public_handler_to_anonymous_callers(auth_env) -> None:
    for name, fn in HANDLERS.items():
        expected = access_of(fn) != PUBLIC
        assert guard_refuses(name, "") == expected, fn.__qualname__
    assert guard_refuses("reflex___state____state.no_such.handler", "")


def test_guard_gives_a_viewer_only_viewer_handlers(make_user) -> None:
    viewer = cookie_for(make_user, "viewer")
    for name, fn in HANDLERS.items():
        assert guard_refuses(name, viewer) == (not allows("viewer", access_of(fn))), fn.__qualname__
    refused = {fn.__qualname__ for name, fn in HANDLERS.items() if guard_refuses(name, viewer)}
    assert set(DATA_HANDLERS) <= refused


def test_requires_checks_again_inside_the_handler(make_user) -> None:
    from app.pages.inbox_state import InboxState

    viewer = FakeState(cookie_for(make_user, "viewer"))
    refusal = InboxState.decide.fn(viewer, "approved")  # called directly, past the guard
    assert "operator" in str(refusal)


def test_guard_clears_what_a_tab_loaded_when_another_user_signs_in_there(make_user) -> None:
    class LoadedPage:
        resets = 0

        def reset(self) -> None:
            self.resets += 1

    LoadedPage.__module__ = "app.pages.example_state"
    hydrate = next(name for name, fn in HANDLERS.items() if fn.__qualname__ == "State.hydrate")
    user = make_user("operator")
    token, _ = sessions.issue(str(user.id))
    state = FakeState(f"{sessions.COOKIE_NAME}={token}")
    state.auth._owner = "the-previous-user"
    page = state.substates["page"] = LoadedPage()

    asyncio.run(EventGuard().preprocess(reflex_app.app, state, Event(name=hydrate)))
    # The owner is the user in their workspace: another workspace forgets what was loaded, too.
    assert page.resets == 1 and state.auth._owner == f"{user.id}@{DEFAULT_WORKSPACE_ID}"
    asyncio.run(EventGuard().preprocess(reflex_app.app, state, Event(name=hydrate)))
    assert page.resets == 1  # same user: nothing to forget
    state.auth._owner = f"{user.id}@another-workspace"
    asyncio.run(EventGuard().preprocess(reflex_app.app, state, Event(name=hydrate)))
    assert page.resets == 2 and state.auth._owner == f"{user.id}@{DEFAULT_WORKSPACE_ID}"
    page.resets = 1

    signed_out = FakeState("")
    signed_out.auth._owner, signed_out.substates["page"] = str(user.id), page
    asyncio.run(EventGuard().preprocess(reflex_app.app, signed_out, Event(name=hydrate)))
    assert page.resets == 2 and signed_out.auth._owner == ""


def test_the_audit_log_its_page_handlers_and_exports_are_for_admins_only(make_user) -> None:
    audit_handlers = {name: fn for name, fn in HANDLERS.items() if fn.__qualname__.startswith("AuditState.")}
    assert {"AuditState.load", "AuditState.export_csv", "AuditState.apply_filters"} <= {
        fn.__qualname__ for fn in audit_handlers.values()
    }
    assert page_access("/audit") == "admin" and api_access("GET", "/api/audit") == "admin"
    for role in ("viewer", "operator", "editor"):
        cookie = cookie_for(make_user, role)
        for name, fn in audit_handlers.items():
            assert guard_refuses(name, cookie), f"{role} {fn.__qualname__}"
        client = session_client(make_user, role)
        for query in ("", "?format=csv", "?format=json"):
            assert client.get(f"/api/audit{query}").status_code == 403, f"{role} {query}"
        assert client.get("/audit", follow_redirects=False).status_code == 403
    admin = cookie_for(make_user, "admin")
    assert not any(guard_refuses(name, admin) for name in audit_handlers)
    assert session_client(make_user, "admin").get("/api/audit?format=csv").status_code == 200
