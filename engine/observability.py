"""One call that sets up a process's logs and traces from the settings (web, worker pool, CLI)."""

from __future__ import annotations

from engine import logs, tracing
from engine.settings import get_settings


def observe_process(role: str) -> None:
    """Logs as FLOWLOOM_LOG_FORMAT at FLOWLOOM_LOG_LEVEL; spans to FLOWLOOM_OTLP_ENDPOINT when it is set."""
    settings = get_settings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, process_role=role)
    tracing.configure(settings.otlp_endpoint, service=f"flowloom-{role}")
