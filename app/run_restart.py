"""Who may start a past run again (re-run from a step, fork): the rule the API and the run page share.

As for starting a run: operators start saved versions again; a run of an inline definition (the
CLI's file, an editor's API call) needs an editor, since its definition may carry per-node powers
(egress exceptions, tool.sql writes) that only editors may grant.
"""

from __future__ import annotations

from app.auth.policy import Role, allows
from engine.errors import ErrorCode, FlowloomError
from engine.rerun import source_run
from engine.runs import in_workspace

INLINE_NEEDS_EDITOR = (
    "starting a run of an inline definition again needs the editor role; operators re-run saved versions"
)


def may_restart(saved: bool, role: str | None) -> bool:
    """Whether a caller with `role` may re-run or fork a run (`saved`: it ran a saved version)."""
    return allows(role, Role.OPERATOR) if saved else allows(role, Role.EDITOR)


def check_may_restart(run_id: str, role: str | None, *, workspace_id: str) -> None:
    """Refuse (INLINE_NEEDS_EDITOR, 403) what `may_restart` refuses; RUN_NOT_FOUND for no such run
    and for a run of another workspace than the caller's `workspace_id` alike."""
    if not in_workspace(run_id, workspace_id=workspace_id):
        raise FlowloomError(f"run {run_id} not found", code=ErrorCode.RUN_NOT_FOUND)
    if not may_restart(source_run(run_id).saved, role):
        raise FlowloomError(INLINE_NEEDS_EDITOR, code=ErrorCode.INLINE_NEEDS_EDITOR)
