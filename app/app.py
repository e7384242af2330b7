"""The Reflex app: the pages of app/pages in the shell of app/layout, and the REST API under /api."""

import reflex as rx

from app.api.main import api
from app.auth.guard import EventGuard
from app.db_outage import backend_exception_handler
from app.layout import add_pages
from app.pages import (  # noqa: F401  (importing declares the pages)
    agents,
    audit,
    chat,
    dashboard,
    dead_letters,
    forms,
    inbox,
    knowledge,
    login,
    models,
    run_detail,
    runs,
    secrets,
    settings,
    templates,
    workflows,
    workspaces,
)
from app.pages.editor import page as editor_page  # noqa: F401
from engine.health_events import health_reporting
from engine.observability import observe_process

observe_process("web")  # JSON logs at FLOWLOOM_LOG_LEVEL, traces to FLOWLOOM_OTLP_ENDPOINT when set

app = rx.App(
    api_transformer=api,
    backend_exception_handler=backend_exception_handler,  # the database down: a banner that retries
    head_components=[rx.el.link(rel="icon", href="/favicon.svg", type="image/svg+xml")],
    style={"font_family": "Inter, ui-sans-serif, system-ui, -apple-system, 'Segoe UI', sans-serif"},
)
app.add_middleware(EventGuard())  # every socket event is checked against app.auth.policy
add_pages(app)
app.register_lifespan_task(health_reporting)  # system.health_check events of this web process
