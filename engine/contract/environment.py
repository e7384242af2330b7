"""The settings and the database a node may use: a few named values, never the whole Settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine.errors import StepError
from engine.settings import get_settings
from models.db import get_engine


@dataclass(frozen=True)
class NodeEnvironment:
    """What a node may read of Flowloom's settings."""

    data_dir: Path  # FLOWLOOM_DATA_DIR, resolved: model caches and other node files live under it
    openvino_telemetry: bool  # FLOWLOOM_OPENVINO_TELEMETRY: OpenVINO tools may send usage data
    # FLOWLOOM_MCP_SERVERS: MCP servers by name ({"command": [...], "env": {...}} or {"url": ...}).
    mcp_servers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def models_dir(self) -> Path:
        """Where local models live: `<data_dir>/models`."""
        return self.data_dir / "models"


def node_environment() -> NodeEnvironment:
    """The node environment from the current settings (read again on every call)."""
    settings = get_settings()
    return NodeEnvironment(
        data_dir=settings.resolved_data_dir,
        openvino_telemetry=settings.openvino_telemetry,
        mcp_servers=dict(settings.mcp_servers),
    )


def database() -> Engine:
    """Flowloom's database, for a node family's own tables (e.g. memory chunks); StepError when none is set."""
    url = get_settings().database_url
    if not url:
        raise StepError("no database configured (FLOWLOOM_DATABASE_URL)", retryable=False)
    return get_engine(url)
