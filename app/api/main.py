"""The REST API: one FastAPI app under /api, mounted in front of the Reflex backend by app/app.py."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from app import problems, routes
from app.api import (
    agents,
    audit,
    auth,
    body_limit,
    circuits,
    dead_letters,
    health,
    hooks,
    mcp_server,
    metrics,
    node_types,
    openai_compat,
    openai_errors,
    openapi_doc,
    publishing,
    rerun,
    run_list,
    run_stream,
    runs,
    secrets,
    security_headers,
    shares,
    triggers,
    trusted_hosts,
    validation,
    version_diff,
    versions,
    workflows,
    workspace_settings,
    workspaces,
)

log = logging.getLogger(__name__)


def create_api() -> FastAPI:
    """The API app; its docs live at /api/docs and its schema at /api/openapi.json."""
    api = FastAPI(
        title="Flowloom API",
        version=openapi_doc.package_version(),
        openapi_url=routes.API_OPENAPI,
        docs_url=routes.API_DOCS,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # unused, and it would sit outside /api
    )
    api.include_router(health.router, prefix=routes.API_PREFIX)
    api.include_router(metrics.router)  # /metrics, where Prometheus looks
    api.include_router(workflows.router, prefix=routes.API_PREFIX)
    api.include_router(version_diff.router, prefix=routes.API_PREFIX)  # before versions: /diff
    api.include_router(versions.router, prefix=routes.API_PREFIX)
    api.include_router(shares.router, prefix=routes.API_PREFIX)  # sharing one workflow
    api.include_router(publishing.router, prefix=routes.API_PREFIX)  # submit, approve, reject, publish
    api.include_router(validation.router, prefix=routes.API_PREFIX)
    api.include_router(node_types.router, prefix=routes.API_PREFIX)
    api.include_router(run_list.router, prefix=routes.API_PREFIX)
    api.include_router(runs.router, prefix=routes.API_PREFIX)
    api.include_router(rerun.router, prefix=routes.API_PREFIX)  # re-run from a step, fork
    api.include_router(run_stream.router, prefix=routes.API_PREFIX)  # Server-Sent Events
    api.include_router(secrets.router, prefix=routes.API_PREFIX)
    api.include_router(audit.router, prefix=routes.API_PREFIX)  # the audit log: read and export, admins
    api.include_router(workspaces.router, prefix=routes.API_PREFIX)
    api.include_router(workspace_settings.router, prefix=routes.API_PREFIX)  # review rule, limits, retention
    api.include_router(agents.router, prefix=routes.API_PREFIX)  # saved agents (Agent Manager)
    api.include_router(dead_letters.router, prefix=routes.API_PREFIX)
    api.include_router(circuits.router, prefix=routes.API_PREFIX)
    api.include_router(triggers.router, prefix=routes.API_PREFIX)
    api.include_router(hooks.router, prefix=routes.API_PREFIX)  # public: signed inbound webhooks
    api.include_router(openai_compat.router, prefix=routes.OPENAI_PREFIX)  # API keys only
    api.router.routes.append(mcp_server.route())  # /api/mcp: workflows as MCP tools, API keys only
    problems.install(api)  # every FlowloomError, HTTP and database error as RFC 9457 problem+json
    auth.install(api)  # sign-in routes and the deny-by-default gate in front of every route
    body_limit.install(api)  # 413 for bodies over the cap, before the auth gate or anyone reads them
    trusted_hosts.install(api)  # Host allow-list (FLOWLOOM_ALLOWED_HOSTS) before anything reads Host
    openai_errors.install(api)  # /v1 answers errors as OpenAI clients expect them
    security_headers.install(api)  # outermost: every response, errors and refusals too, gets the headers
    openapi_doc.install(api)  # security schemes, problem+json on every error status, the definition schema
    return api


api = create_api()
