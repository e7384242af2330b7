"""Every page route of the app in one place, with the URL builders pages link through."""

from __future__ import annotations

INDEX = "/"
WORKFLOWS = "/workflows"
WORKFLOW_EDITOR = "/workflows/[workflow_id]"
RUNS = "/runs"
RUN = "/runs/[run_id]"  # one run: its graph, steps, progress and Cancel (app/pages/run_detail.py)
INBOX = "/inbox"
TEMPLATES = "/templates"
DASHBOARD = "/dashboard"
MODELS = "/models"
AGENTS = "/agents"  # saved agents (app/pages/agents.py)
KNOWLEDGE = "/knowledge"  # knowledge collections: uploaded documents (app/pages/knowledge.py)
LOGIN = "/login"
SETTINGS = "/settings"
SECRETS = "/secrets"
DEAD_LETTERS = "/dead-letters"
AUDIT = "/audit"  # the audit log: filters and CSV/JSON export (admins; app/pages/audit.py)
WORKSPACES = "/workspaces"  # members of the current workspace; instance admins: every workspace
CHAT = "/chat/[trigger_id]"  # a chat trigger's page (signed-in operators)
FORM = "/forms/[trigger_id]"  # a form trigger's page (public ones with ?token=)

API_PREFIX = "/api"
API_DOCS = f"{API_PREFIX}/docs"
API_OPENAPI = f"{API_PREFIX}/openapi.json"
OPENAI_PREFIX = "/v1"  # the OpenAI-compatible API (app/api/openai_compat.py)


def workflow_editor(workflow_id: str) -> str:
    """The editor page of one workflow."""
    return f"{WORKFLOWS}/{workflow_id}"


def run_page(run_id: str) -> str:
    """The detail page of one run."""
    return f"{RUNS}/{run_id}"


def chat_page(trigger_id: str) -> str:
    """The chat page of one chat trigger."""
    return f"/chat/{trigger_id}"


def form_page(trigger_id: str, token: str = "") -> str:
    """The page of one form trigger (with its access token, for a public form's link)."""
    return f"/forms/{trigger_id}" + (f"?token={token}" if token else "")
