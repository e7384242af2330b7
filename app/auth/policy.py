"""Who may do what: the roles, and one table per entry point (API route, page, event handler).

Deny by default: an API route, page or event handler with no entry here is refused, whatever the
caller's role. A new route, page or handler therefore needs a line in this file (or, for a handler,
the `requires` decorator); tests/integration/test_auth_routes.py walks every one of them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from engine.roles import RANK, Role, at_least, is_role

__all__ = ["PUBLIC", "RANK", "SELF_AUTHENTICATED", "Access", "Role", "allows", "is_role", "lower_role"]


# What an entry may say besides a role: anyone, signed in or not.
PUBLIC = "public"
Access = Role | str  # a Role or PUBLIC


def allows(role: str | None, needed: Access) -> bool:
    """True when a caller with `role` (None = anonymous) may use something that needs `needed`."""
    if needed == PUBLIC:
        return True
    return at_least(role, needed)


def lower_role(a: str, b: str) -> str:
    """The lesser of two roles (an API key never exceeds its owner's current role)."""
    return a if RANK.get(a, 0) <= RANK.get(b, 0) else b


# ---------------------------------------------------------------------------------------------
# REST API: (method, path template as FastAPI declares it) -> access.
API_POLICY: dict[tuple[str, str], Access] = {
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/api/health/live"): PUBLIC,  # liveness: checks nothing
    ("GET", "/api/health/ready"): PUBLIC,  # readiness: database + Redis, cached (app/api/health_cache.py)
    ("GET", "/metrics"): Role.ADMIN,  # Prometheus; or FLOWLOOM_METRICS_TOKEN (SCRAPE_TOKEN_ROUTES)
    ("GET", "/api/docs"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC,
    # workflows
    ("GET", "/api/workflows"): Role.VIEWER,
    ("POST", "/api/workflows"): Role.EDITOR,
    ("GET", "/api/workflows/{workflow_id}"): Role.VIEWER,
    ("DELETE", "/api/workflows/{workflow_id}"): Role.EDITOR,
    ("PATCH", "/api/workflows/{workflow_id}"): Role.EDITOR,
    # building through the API (app/api/versions.py, validation.py, node_types.py)
    ("POST", "/api/workflows/{workflow_id}/versions"): Role.EDITOR,
    ("GET", "/api/workflows/{workflow_id}/versions"): Role.VIEWER,
    ("GET", "/api/workflows/{workflow_id}/versions/{version}"): Role.VIEWER,
    ("GET", "/api/workflows/{workflow_id}/versions/diff"): Role.VIEWER,  # app/api/version_diff.py
    # sharing one workflow (app/api/shares.py): its own workspace only (engine/shares.py checks)
    ("GET", "/api/workflows/{workflow_id}/shares"): Role.VIEWER,
    ("POST", "/api/workflows/{workflow_id}/shares"): Role.EDITOR,
    ("DELETE", "/api/workflows/{workflow_id}/shares/{share_id}"): Role.EDITOR,
    # four-eyes publishing (app/api/publishing.py); who may approve is checked by engine.publishing
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/submit"): Role.EDITOR,
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/approve"): Role.EDITOR,
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/reject"): Role.EDITOR,
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/publish"): Role.EDITOR,
    ("POST", "/api/validate"): Role.VIEWER,  # checks a definition; saves and runs nothing
    ("GET", "/api/node-types"): Role.VIEWER,
    ("GET", "/api/node-types/{node_type}"): Role.VIEWER,
    # runs and approvals (the approver list of each approval is checked by engine.approvals)
    # Operators run saved versions (workflow_id [+ version]); an inline `definition` needs editor,
    # checked in app/api/runs.py (it can carry per-node powers: egress exceptions, tool.sql writes).
    ("POST", "/api/runs"): Role.OPERATOR,
    ("POST", "/api/workflows/{workflow_id}/runs"): Role.OPERATOR,  # a saved version only
    ("GET", "/api/runs"): Role.VIEWER,
    ("GET", "/api/runs/{run_id}"): Role.VIEWER,
    ("GET", "/api/runs/{run_id}/events"): Role.VIEWER,  # Server-Sent Events
    ("POST", "/api/runs/{run_id}/cancel"): Role.OPERATOR,
    # a past run started again (app/api/rerun.py): as starting it; an inline definition's needs editor
    ("POST", "/api/runs/{run_id}/rerun"): Role.OPERATOR,
    ("POST", "/api/runs/{run_id}/fork"): Role.OPERATOR,
    ("GET", "/api/approvals"): Role.VIEWER,
    ("POST", "/api/approvals/{approval_id}/decision"): Role.OPERATOR,
    # sign-in (app/api/auth.py)
    ("GET", "/auth/login/{provider}"): PUBLIC,
    ("GET", "/auth/callback/{provider}"): PUBLIC,
    ("POST", "/auth/local"): PUBLIC,
    ("POST", "/auth/setup"): PUBLIC,
    ("POST", "/auth/logout"): PUBLIC,
    # me, keys, users, audit
    ("GET", "/api/me"): Role.VIEWER,
    ("GET", "/api/keys"): Role.VIEWER,
    ("POST", "/api/keys"): Role.VIEWER,
    ("DELETE", "/api/keys/{key_id}"): Role.VIEWER,
    ("GET", "/api/users"): Role.ADMIN,  # instance admins only (the routes check users.role)
    ("PATCH", "/api/users/{user_id}"): Role.ADMIN,
    # Any member may list their workspaces; the routes check admin rights in the named workspace
    # (404 when not a member) and instance admin for creating one (app/api/workspaces.py).
    ("GET", "/api/workspaces"): Role.VIEWER,
    ("POST", "/api/workspaces"): Role.ADMIN,
    ("PATCH", "/api/workspaces/{workspace_id}"): Role.VIEWER,
    ("GET", "/api/workspaces/{workspace_id}/members"): Role.VIEWER,
    ("PUT", "/api/workspaces/{workspace_id}/members/{user_id}"): Role.VIEWER,
    ("DELETE", "/api/workspaces/{workspace_id}/members/{user_id}"): Role.VIEWER,
    # A workspace's review rule, limits, retention and its prune preview (app/api/workspace_settings.py):
    # its admins, checked by the route in the named workspace (404 when not a member).
    ("GET", "/api/workspaces/{workspace_id}/settings"): Role.VIEWER,
    ("PATCH", "/api/workspaces/{workspace_id}/settings"): Role.VIEWER,
    ("GET", "/api/workspaces/{workspace_id}/retention/preview"): Role.VIEWER,
    ("GET", "/api/audit"): Role.ADMIN,
    # saved agents (app/api/agents.py): viewers read, editors change
    ("GET", "/api/agents"): Role.VIEWER,
    ("POST", "/api/agents"): Role.EDITOR,
    ("GET", "/api/agents/capabilities"): Role.VIEWER,
    ("GET", "/api/agents/schema"): Role.VIEWER,
    ("GET", "/api/agents/{agent_id}"): Role.VIEWER,
    ("PATCH", "/api/agents/{agent_id}"): Role.EDITOR,
    ("POST", "/api/agents/{agent_id}/validate"): Role.EDITOR,
    ("POST", "/api/agents/{agent_id}/terminate"): Role.EDITOR,
    # secrets (app/api/secrets.py): values are write-only
    ("GET", "/api/secrets"): Role.ADMIN,
    ("POST", "/api/secrets"): Role.ADMIN,
    ("PUT", "/api/secrets/{name}"): Role.ADMIN,
    ("DELETE", "/api/secrets/{name}"): Role.ADMIN,
    # dead letters (app/api/dead_letters.py): events and trigger messages that could not be handled
    ("GET", "/api/circuits"): Role.ADMIN,
    ("POST", "/api/circuits/reset"): Role.ADMIN,
    ("GET", "/api/dead-letters"): Role.ADMIN,
    ("GET", "/api/dead-letters/{dead_letter_id}"): Role.ADMIN,
    ("POST", "/api/dead-letters/{dead_letter_id}/replay"): Role.ADMIN,
    # triggers (app/api/triggers.py): their run-time state; the triggers themselves are in the definition
    ("GET", "/api/workflows/{workflow_id}/triggers"): Role.VIEWER,
    ("GET", "/api/triggers/{trigger_id}"): Role.VIEWER,
    ("POST", "/api/triggers/{trigger_id}/pause"): Role.OPERATOR,
    ("POST", "/api/triggers/{trigger_id}/resume"): Role.OPERATOR,
    ("POST", "/api/triggers/{trigger_id}/token"): Role.EDITOR,
    # inbound webhooks (app/api/hooks.py): public, authenticated by the trigger's own signature
    ("POST", "/api/hooks/{trigger_id}"): PUBLIC,
    # the OpenAI-compatible API (app/api/openai_compat.py): API keys only, checked by the route
    ("GET", "/v1/models"): Role.OPERATOR,
    ("GET", "/v1/models/{model}"): Role.OPERATOR,
    ("POST", "/v1/chat/completions"): Role.OPERATOR,
    # Flowloom as an MCP server (app/api/mcp_server.py): API keys only, checked by the endpoint too.
    ("GET", "/api/mcp"): Role.OPERATOR,
    ("POST", "/api/mcp"): Role.OPERATOR,
    ("DELETE", "/api/mcp"): Role.OPERATOR,
}

# PUBLIC routes that authenticate each request themselves (a signature over the body): the gate
# reads no cookie or API key for them, and app.api.body_limit leaves their cap to the route.
SELF_AUTHENTICATED: frozenset[tuple[str, str]] = frozenset({("POST", "/api/hooks/{trigger_id}")})
# Routes a Prometheus scraper may also read with `Authorization: Bearer <FLOWLOOM_METRICS_TOKEN>`
# (a token that is no API key and opens nothing else).
SCRAPE_TOKEN_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/metrics")})

# Pages: Reflex route -> access. Data on a page comes through its event handlers, which are
# checked too (HANDLER_POLICY); this table decides redirects and what the HTTP layer serves.
PAGE_POLICY: dict[str, Access] = {
    "/login": PUBLIC,
    "/": Role.VIEWER,
    "/workflows": Role.VIEWER,
    "/workflows/[workflow_id]": Role.VIEWER,  # the editor; its handlers carry `requires`
    "/runs": Role.VIEWER,
    "/runs/[run_id]": Role.VIEWER,  # one run; Cancel carries `requires` (operator)
    "/templates": Role.VIEWER,
    "/dashboard": Role.VIEWER,
    "/inbox": Role.OPERATOR,
    "/settings": Role.VIEWER,
    "/models": Role.VIEWER,  # its actions carry `requires` (admin)
    "/knowledge": Role.VIEWER,  # its actions carry `requires` (editor to change)
    "/agents": Role.VIEWER,  # saved agents; its actions carry `requires` (editor)
    "/secrets": Role.ADMIN,
    "/dead-letters": Role.ADMIN,
    "/audit": Role.ADMIN,  # the audit log; its handlers carry `requires` (admin)
    "/workspaces": Role.ADMIN,  # admins of the current workspace
    "/chat/[trigger_id]": Role.OPERATOR,  # a chat trigger's conversations (app/pages/chat.py)
    # A form trigger's page: public at the HTTP layer; its handlers decide (public form + token,
    # else a signed-in operator) and show nothing but "not found" otherwise (app/pages/forms_state.py).
    "/forms/[trigger_id]": PUBLIC,
    # The app's "page not found" page (app/error_views.py): what the browser shows at any unknown address.
    "/404": Role.VIEWER,
}

# Reflex event handlers by `Class.method` qualname -> access. Handlers of Flowloom's own auth
# pages carry the `requires` decorator instead (app/auth/guard.py), which wins over this table.
HANDLER_POLICY: dict[str, Access] = {
    # Reflex's own handlers: hydration, page-load chaining, client storage sync, error reports.
    "State.hydrate": PUBLIC,
    "State.hydrate_and_load": PUBLIC,
    "State.set_is_hydrated": PUBLIC,
    "OnLoadInternalState.on_load_internal": PUBLIC,
    "OnLoadInternalState.set_is_hydrated": PUBLIC,
    "UpdateVarsInternalState.update_vars_internal": PUBLIC,
    "FrontendEventExceptionState.handle_frontend_exception": PUBLIC,
    # `setvar` only changes the caller's own UI state; data changes go through checked handlers.
    "EventHandlerSetVar.setvar": Role.VIEWER,
    # app/pages
    "AuthState.check_page": PUBLIC,  # decides itself, per page
    "AuthState.switch_workspace": Role.VIEWER,  # checks membership itself
    "LoginState.load": PUBLIC,
    "DashboardState.load": Role.VIEWER,
    "RunsState.load": Role.VIEWER,
    "TemplatesState.use_template": Role.EDITOR,
    "WorkflowsState.load": Role.VIEWER,
    "WorkflowsState.set_search": Role.VIEWER,
    "WorkflowsState.set_create_open": Role.VIEWER,
    "WorkflowsState.open_rename": Role.VIEWER,
    "WorkflowsState.set_rename_open": Role.VIEWER,
    "WorkflowsState.set_rename_name": Role.VIEWER,
    "WorkflowsState.open_delete": Role.VIEWER,
    "WorkflowsState.set_delete_open": Role.VIEWER,
    "WorkflowsState.create": Role.EDITOR,
    "WorkflowsState.rename": Role.EDITOR,
    "WorkflowsState.duplicate": Role.EDITOR,
    "WorkflowsState.delete": Role.EDITOR,
    # sharing one workflow (engine/shares.py checks it is the caller's workspace's)
    "WorkflowsState.open_share": Role.VIEWER,
    "WorkflowsState.set_share_open": Role.VIEWER,
    "WorkflowsState.set_share_kind": Role.VIEWER,
    "WorkflowsState.set_share_target": Role.VIEWER,
    "WorkflowsState.set_share_permission": Role.VIEWER,
    "WorkflowsState.grant_share": Role.EDITOR,
    "WorkflowsState.revoke_share": Role.EDITOR,
    # Paging of the admin lists: components.pager.PagedState's handlers, copied onto each State
    "AuditState.next_page": Role.ADMIN,
    "AuditState.previous_page": Role.ADMIN,
    "DeadLettersState.next_page": Role.ADMIN,  # its list reads nothing for a workspace-only admin
    "DeadLettersState.previous_page": Role.ADMIN,
    # A form trigger's page (app/pages/forms_state.py): public; each handler that reads or starts
    # anything checks app.trigger_access.open_form itself (operator, or a public form's token).
    "FormState.load": PUBLIC,
    "FormState.set_value": PUBLIC,
    "FormState.set_flag": PUBLIC,
    "FormState.submit": PUBLIC,
    "FormState.wait_result": PUBLIC,
    "FormState.again": PUBLIC,
}

# Paths Reflex itself serves: the event socket, liveness checks. Never gated by role.
REFLEX_INTERNAL_PATHS = ("/_event", "/ping", "/_health")
# Uploads run handlers with files: only for signed-in users (the handler is checked again).
REFLEX_UPLOAD_PATH = "/_upload"
# Built frontend files that carry no data.
STATIC_PREFIXES = ("/assets/", "/_next/", "/external/", "/public/")
STATIC_SUFFIXES = (
    ".js", ".mjs", ".css", ".map", ".svg", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico",
    ".woff", ".woff2", ".ttf", ".otf", ".txt", ".xml", ".webmanifest", ".gz", ".br", ".wasm",
)  # fmt: skip
PUBLIC_HTML = ("/404.html", "/__spa-fallback.html")


def api_access(method: str, path_template: str) -> Access | None:
    """What a REST route needs; None when it is not in the table (refused)."""
    return API_POLICY.get((method.upper(), path_template))


def _route_regex(route: str) -> re.Pattern[str]:
    """A Reflex route ("/runs/[run_id]", "/docs/[[...splat]]") as a regular expression."""
    parts = []
    for segment in route.strip("/").split("/"):
        if segment.startswith("[[...") or segment.startswith("[..."):
            parts.append(".*")
        elif segment.startswith("[") and segment.endswith("]"):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(p for p in parts if p) + "/?$")


@lru_cache(maxsize=1)
def _page_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    # Static routes first, so "/runs/new" wins over "/runs/[run_id]".
    ordered = sorted(PAGE_POLICY, key=lambda r: ("[" in r, -len(r)))
    return tuple((_route_regex(r), r) for r in ordered)


def page_route(path: str) -> str | None:
    """The page route in PAGE_POLICY that `path` (a URL path) belongs to, or None."""
    path = path or "/"
    if path.endswith("/index.html"):
        path = path.removesuffix("index.html")
    elif path.endswith(".html"):
        path = path.removesuffix(".html")
    path = "/" + path.strip("/")
    for pattern, route in _page_patterns():
        if pattern.match(path):
            return route
    return None


def page_access(route: str) -> Access | None:
    """What a page route (as Reflex names it, or a URL path) needs; None = not in the table."""
    if route in PAGE_POLICY:
        return PAGE_POLICY[route]
    matched = page_route(route)
    return PAGE_POLICY[matched] if matched else None


def handler_access(qualname: str) -> Access | None:
    """What an event handler (`Class.method`) needs according to the table; None = refused."""
    return HANDLER_POLICY.get(qualname)


def is_static_path(path: str) -> bool:
    """True for built frontend files (scripts, styles, images) that hold no data."""
    if path in PUBLIC_HTML:
        return True
    if path.startswith(STATIC_PREFIXES):
        return True
    return path.lower().endswith(STATIC_SUFFIXES)


def is_reflex_internal(path: str) -> bool:
    """True for Reflex's own endpoints: the event socket and its liveness checks."""
    return any(path == p or path.startswith(p + "/") for p in REFLEX_INTERNAL_PATHS)
