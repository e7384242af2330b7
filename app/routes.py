"""Every page route of the app in one place, with the URL builders pages link through."""

from __future__ import annotations

INDEX = "/"
WORKFLOWS = "/workflows"
RUNS = "/runs"
INBOX = "/inbox"
TEMPLATES = "/templates"
DASHBOARD = "/dashboard"

API_PREFIX = "/api"
API_DOCS = f"{API_PREFIX}/docs"
API_OPENAPI = f"{API_PREFIX}/openapi.json"
