"""Every page route of the app in one place, with the URL builders pages link through."""

from __future__ import annotations

INDEX = "/"
WORKFLOWS = "/workflows"
WORKFLOW_EDITOR = "/workflows/[workflow_id]"
RUNS = "/runs"
INBOX = "/inbox"
TEMPLATES = "/templates"
DASHBOARD = "/dashboard"
MODELS = "/models"
LOGIN = "/login"
SETTINGS = "/settings"
SECRETS = "/secrets"

API_PREFIX = "/api"
API_DOCS = f"{API_PREFIX}/docs"
API_OPENAPI = f"{API_PREFIX}/openapi.json"


def workflow_editor(workflow_id: str) -> str:
    """The editor page of one workflow."""
    return f"{WORKFLOWS}/{workflow_id}"
