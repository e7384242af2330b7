"""A workspace's limits and retention settings: read them, change them (audited), and the design's
`GUARDRAILS_CONFIG.compliance` block mapped onto them.

The settings are plain nullable columns (workspaces.max_concurrent_runs, runs_per_hour,
retention_days, retention_keep_last, step_data_retention_days; workflows.max_concurrent_runs):
None is "no limit" or "keep forever". The compliance block of `FLOWLOOM_GUARDRAILS` sets the
instance's default retention: `data_retention_days` applies to every workspace whose own
retention_days is unset; a workflow's `policy.guardrails.compliance.data_retention_days` shortens
it for that workflow's runs (engine/retention.py, the shorter wins). `audit_log_level` and the
two encryption flags are shown beside them, unchanged: the audit log records every action at
any level, and encryption is the database's and the connection URLs' business.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from engine import audit, run_slots
from engine.errors import ErrorCode, FlowloomError
from engine.run_state import Dispatch
from engine.settings import get_settings
from models.core_tables import table_of
from models.tables import Workflow
from models.workspaces import Workspace

_workspaces, _workflows = table_of(Workspace), table_of(Workflow)
FIELDS = ("max_concurrent_runs", "runs_per_hour", "retention_days", "retention_keep_last",
          "step_data_retention_days")  # fmt: skip
MAX_VALUE = 1_000_000


@dataclass(frozen=True)
class WorkspaceLimits:
    """One workspace's settings (None: no limit / keep forever)."""

    max_concurrent_runs: int | None = None
    runs_per_hour: int | None = None
    retention_days: int | None = None
    retention_keep_last: int | None = None
    step_data_retention_days: int | None = None


@dataclass(frozen=True)
class Compliance:
    """FLOWLOOM_GUARDRAILS' compliance block as the settings page shows it."""

    data_retention_days: int | None
    audit_log_level: str | None
    encryption_at_rest: bool | None
    encryption_in_transit: bool | None


def compliance() -> Compliance:
    """The instance's compliance block (each field None when unset)."""
    block = (get_settings().guardrails or {}).get("compliance") or {}
    days = block.get("data_retention_days")
    return Compliance(
        days if isinstance(days, int) and not isinstance(days, bool) and days >= 1 else None,
        block.get("audit_log_level"),
        block.get("encryption_at_rest"),
        block.get("encryption_in_transit"),
    )


def effective_retention_days(limits: WorkspaceLimits) -> int | None:
    """The workspace's retention_days, or the compliance block's data_retention_days when unset."""
    return limits.retention_days if limits.retention_days is not None else compliance().data_retention_days


def _not_found(workspace_id: object) -> FlowloomError:
    return FlowloomError(f"no workspace {workspace_id}", code=ErrorCode.WORKSPACE_NOT_FOUND)


def get_limits(conn: Connection, workspace_id: uuid.UUID | str) -> WorkspaceLimits:
    """The workspace's settings; WORKSPACE_NOT_FOUND if it does not exist."""
    row = conn.execute(
        select(*(_workspaces.c[f] for f in FIELDS)).where(_workspaces.c.id == workspace_id)
    ).first()
    if row is None:
        raise _not_found(workspace_id)
    return WorkspaceLimits(**row._mapping)


def _checked(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VALUE:
        raise FlowloomError(
            f"{name}: {value!r} is not a whole number from 1 to {MAX_VALUE}; leave it empty for no limit",
            code=ErrorCode.REQUEST_INVALID, field=name,
        )  # fmt: skip
    return value


def set_limits(
    conn: Connection,
    workspace_id: uuid.UUID | str,
    limits: WorkspaceLimits,
    *,
    actor: str = "",
    source: str = "",
    who: audit.Who | None = None,
) -> list[Dispatch]:
    """Store the workspace's settings (audited with before and after, as `who` or `actor`); returns
    the waiting runs a looser limit admits now (send them after the commit)."""
    values = {name: _checked(name, getattr(limits, name)) for name in FIELDS}
    before = get_limits(conn, workspace_id)
    conn.execute(update(_workspaces).where(_workspaces.c.id == workspace_id).values(**values))
    audit.record(conn, action="workspace.limits_changed", actor=actor, target_type="workspace",
                 target_id=str(workspace_id), source=source, who=who, before=asdict(before),
                 after=values)  # fmt: skip
    return run_slots.admit(conn, workspace_id)


def set_workflow_limit(
    conn: Connection,
    workflow_id: uuid.UUID | str,
    max_concurrent_runs: int | None,
    *,
    actor: str,
    source: str = "",
) -> list[Dispatch]:
    """Store how many runs of one workflow may run at once (None: only the workspace's limit), audited."""
    value = _checked("max_concurrent_runs", max_concurrent_runs)
    row = conn.execute(
        select(_workflows.c.workspace_id, _workflows.c.max_concurrent_runs).where(
            _workflows.c.id == workflow_id
        )
    ).first()
    if row is None:
        raise FlowloomError(f"no workflow {workflow_id}", code=ErrorCode.WORKFLOW_NOT_FOUND)
    conn.execute(update(_workflows).where(_workflows.c.id == workflow_id).values(max_concurrent_runs=value))
    audit.record(conn, action="workflow.limit_changed", actor=actor, target_type="workflow",
                 target_id=str(workflow_id), source=source, before={"max_concurrent_runs": row.max_concurrent_runs},
                 after={"max_concurrent_runs": value})  # fmt: skip
    return run_slots.admit(conn, row.workspace_id)
