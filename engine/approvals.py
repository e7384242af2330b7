"""Human approvals: N-of-M quorum, deadlines and escalation, the listings; a decision resumes the run.

Who may decide is engine.approvers' one rule (`may_decide`): `decide` applies it, and so does
every listing (`list_decidable`, for the REST API and the Inbox) before it counts or limits.

Every change locks the approval row (`SELECT ... FOR UPDATE`), so two people deciding at once are
applied one after the other: the second finds the approval decided and is told so. Votes are rows
of `approval_votes` (one per voter); the first action to gather `quorum` votes is the decision.
Deadlines are applied by the worker sweeper (`expire_due`). Each vote, decision, expiry and
escalation is written to the audit log in the same transaction.

The waiting step's node type says what a decision means: its `resume` hook turns a decision into
the step's outputs, its `on_expiry` hook picks the decision at the deadline (None: escalate). The
approval request it suspended with names `approvers`, `quorum` and `escalate_to_role`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Select, bindparam, exists, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from engine import audit, dispatch, events, executor, guardrail_actions, waiting
from engine.approvers import DECIDER_ROLE, Approver, describe_approvers, may_decide, unverified_hint
from engine.contract import EXPIRED_BY, NodeType, get_node_type
from engine.contract.node_type import ResumeFunction
from engine.errors import ErrorCode, FlowloomError, StepError
from engine.roles import at_least
from engine.run_state import status_literal
from engine.settings import get_settings
from models.auth import ApprovalVote
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Approval, Run, Workflow


class ApprovalError(FlowloomError):
    """A decision was not applied: not found, forbidden, invalid, or (the default) a conflict."""

    code = ErrorCode.APPROVAL_CONFLICT  # decided, voted, expired or no longer waiting


@dataclass
class Outcome:
    """What a vote did: decided the approval (status and the step's outputs) or counted towards quorum."""

    status: str
    votes: int
    quorum: int
    outputs: dict[str, Any] | None = None
    voters: list[str] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        return self.status != "pending"


def _db(database_url: str | None):
    return get_engine(database_url or get_settings().database_url)


def _resumable(step: executor.ClaimedStep) -> tuple[NodeType, ResumeFunction]:
    """The waiting step's node type and how a decision resumes it (which the type declares)."""
    node_type = get_node_type(step.node_type)
    if node_type is None or node_type.resume is None:
        raise ApprovalError(
            f"node type {step.node_type!r} of step {step.node_id!r} declares no way to resume it with a "
            "decision; is its node family installed?", code=ErrorCode.APPROVAL_INVALID,
        )  # fmt: skip
    return node_type, node_type.resume


def _config(
    request: dict[str, Any], conn: Connection, step: executor.ClaimedStep, node_type: NodeType
) -> BaseModel:
    """The node's config as the step rendered it (templated approvers and fields included)."""
    model = node_type.config_model
    try:
        return model.model_validate({k: request[k] for k in model.model_fields if k in request})
    except ValueError:
        run = executor.load_run(conn, step.run_id)
        return model.model_validate(run.graph.nodes[step.node_id].config)


def _quorum(request: dict[str, Any]) -> int:
    """How many votes for one action decide the approval (the request's `quorum`, at least 1)."""
    return max(1, int(request.get("quorum") or 1))


def _audit(conn: Connection, actor: str, action: str, approval_id: str, details: dict[str, Any]) -> None:
    audit.record(
        conn, actor=actor, action=action, target_type="approval", target_id=approval_id, details=details
    )


_approvals, _votes = table_of(Approval), table_of(ApprovalVote)
_OPEN_COLUMNS = (
    _approvals.c.id,
    _approvals.c.run_id,
    _approvals.c.step_id,
    _approvals.c.node_id,
    _approvals.c.status,
    _approvals.c.request,
    _approvals.c.deadline,
    _approvals.c.decided_by,
)
# A decider's role in each workspace they are a member of (workspace id -> role): approvals of
# other workspaces do not exist for them, and their role where the approval's run is decides.
WorkspaceRoles = Mapping[str, str]
_runs = table_of(Run)
_RUN_WORKSPACE = (
    select(_runs.c.workspace_id)
    .where(_runs.c.id == _approvals.c.run_id)
    .scalar_subquery()
    .label("workspace_id")
)
_LOCK = (
    select(
        *_OPEN_COLUMNS,
        (_approvals.c.deadline.is_not(None) & (_approvals.c.deadline < func.now())).label("expired"),
        _RUN_WORKSPACE,
    )
    .where(_approvals.c.id == bindparam("approval"))
    .with_for_update()
)


def _lock(conn: Connection, approval_id: str):
    try:
        uuid.UUID(approval_id)
    except ValueError:
        return None
    return conn.execute(_LOCK, {"approval": approval_id}).first()


def _scoped(row: Any, approver: Approver, workspaces: WorkspaceRoles | None) -> tuple[Any, Approver]:
    """The locked row and the approver with their role in its workspace; no row (not found) for an
    approval of a workspace they are not a member of. `workspaces` None: no workspace limit."""
    if row is None or workspaces is None:
        return row, approver
    role = workspaces.get(str(row.workspace_id))
    return (None, approver) if role is None else (row, replace(approver, role=role))


def _refuse_unless_open(row: Any, approval_id: str) -> None:
    if row is None:
        raise ApprovalError(f"approval {approval_id!r} does not exist", code=ErrorCode.APPROVAL_NOT_FOUND)
    if row.status == "expired":
        raise ApprovalError(
            f"approval {approval_id} expired at {row.deadline.isoformat()}; nothing was changed"
        )
    if row.status != "pending":
        by = f" by {row.decided_by}" if row.decided_by else ""
        raise ApprovalError(f"approval {approval_id} was already {row.status}{by}; nothing was changed")
    if row.expired:
        raise ApprovalError(
            f"approval {approval_id} expired at {row.deadline.isoformat()}; nothing was changed"
        )


def _close(
    conn: Connection, row: Any, step: executor.ClaimedStep, *, status: str, decision: dict[str, Any],
    outputs: dict[str, Any], decided_by: str,
) -> list[executor.Dispatch]:  # fmt: skip
    """Record the final decision and finish the waiting step, which routes the run onwards."""
    conn.execute(
        update(_approvals)
        .values(status=status, decision=decision, decided_by=decided_by, decided_at=func.now())
        .where(_approvals.c.id == row.id)
    )
    events.emit(conn, events.APPROVAL_DECIDED, step.run_id, approval_id=str(row.id), action=decision["action"],
                decided_by=decided_by, status=status, step_id=step.step_id, node_id=step.node_id)  # fmt: skip
    return executor.finish_step(conn, step, outputs=outputs, expected_status="waiting")


def decide(
    approval_id: str,
    approver: Approver,
    *,
    action: str,
    form: dict[str, Any] | None = None,
    comment: str = "",
    workspaces: WorkspaceRoles | None = None,
    database_url: str | None = None,
) -> Outcome:
    """Cast the approver's vote; when it completes the quorum, decide and resume the run.

    With `workspaces` (the decider's role in each of their workspaces; routes and pages pass it),
    an approval of another workspace is not found, and their role in its workspace applies.
    A guardrail review (a step a guardrail parked) is decided by engine.guardrail_actions instead
    of the step's node type: one decider, approved (Allow) or rejected (Block).
    """
    if _is_guardrail_review(approval_id, database_url):
        return _decide_guardrail_review(approval_id, approver, action=action, comment=comment,
                                        workspaces=workspaces, database_url=database_url)  # fmt: skip
    with _db(database_url).begin() as conn:
        row, approver = _scoped(_lock(conn, approval_id), approver, workspaces)
        _refuse_unless_open(row, approval_id)
        request = row.request or {}
        if not may_decide(request, approver):
            raise ApprovalError(
                f"{approver.voter} may not decide approval {approval_id}: it is for "
                f"{describe_approvers(request)}{unverified_hint(request, approver)}", code=ErrorCode.APPROVAL_FORBIDDEN,
            )  # fmt: skip
        step = waiting.waiting_step(conn, str(row.step_id))
        if step is None:
            raise ApprovalError(f"the step of approval {approval_id} is no longer waiting")
        node_type, resume = _resumable(step)
        cfg, quorum = _config(request, conn, step, node_type), _quorum(request)
        vote = {"action": action, "form": form or {}, "comment": comment, "decided_by": approver.voter,
                "data": step.inputs.get("in")}  # fmt: skip
        try:
            outputs = resume(cfg, vote)
        except StepError as exc:
            raise ApprovalError(str(exc), code=ErrorCode.APPROVAL_INVALID, field=exc.field) from exc
        clean_form = outputs[action]["form"]
        inserted = conn.execute(
            pg_insert(_votes)
            .values(id=uuid.uuid4(), approval_id=row.id, voter=approver.voter, action=action, form=clean_form,
                    comment=comment, created_at=func.now())
            .on_conflict_do_nothing(constraint="uq_approval_vote")
            .returning(_votes.c.id)
        ).first()  # fmt: skip
        if inserted is None:
            raise ApprovalError(
                f"{approver.voter} already voted on approval {approval_id}; nothing was changed"
            )
        votes = conn.execute(
            select(_votes.c.voter, _votes.c.action, _votes.c.form, _votes.c.comment, _votes.c.created_at)
            .where(_votes.c.approval_id == row.id)
            .order_by(_votes.c.created_at, _votes.c.voter)
        ).mappings().all()  # fmt: skip
        same = [v for v in votes if v["action"] == action]
        _audit(conn, approver.voter, "approval.voted", str(row.id),
               {"action": action, "comment": comment, "votes": len(same), "quorum": quorum})  # fmt: skip
        if len(same) < quorum:
            return Outcome("pending", len(same), quorum, voters=[v["voter"] for v in same])
        outputs[action]["votes"] = [
            {"voter": v["voter"], "action": v["action"], "form": v["form"], "comment": v["comment"]}
            for v in votes
        ]
        status = action if action in ("approved", "rejected") else "decided"
        decision = {**vote, "form": clean_form, "voters": [v["voter"] for v in same]}
        sent = _close(
            conn, row, step, status=status, decision=decision, outputs=outputs, decided_by=approver.voter
        )
        _audit(conn, approver.voter, "approval.decided", str(row.id),
               {"action": action, "status": status, "voters": [v["voter"] for v in same]})  # fmt: skip
    dispatch.send(sent)
    return Outcome(status, len(same), quorum, outputs=outputs, voters=[v["voter"] for v in same])


def _is_guardrail_review(approval_id: str, database_url: str | None) -> bool:
    try:
        wanted = uuid.UUID(approval_id)
    except ValueError:
        return False
    with _db(database_url).connect() as conn:
        request = conn.execute(select(_approvals.c.request).where(_approvals.c.id == wanted)).scalar()
    return guardrail_actions.is_review(request)


def _decide_guardrail_review(
    approval_id: str, approver: Approver, *, action: str, comment: str, workspaces: WorkspaceRoles | None,
    database_url: str | None,
) -> Outcome:  # fmt: skip
    with _db(database_url).begin() as conn:
        row, approver = _scoped(_lock(conn, approval_id), approver, workspaces)
        _refuse_unless_open(row, approval_id)
        request = row.request or {}
        if not may_decide(request, approver):
            raise ApprovalError(f"{approver.voter} may not decide approval {approval_id}: it is for "
                                f"{describe_approvers(request)}", code=ErrorCode.APPROVAL_FORBIDDEN)  # fmt: skip
        step = waiting.waiting_step(conn, str(row.step_id))
        if step is None:
            raise ApprovalError(f"the step of approval {approval_id} is no longer waiting")
        try:
            status, sent = guardrail_actions.decide_review(conn, row, step, voter=approver.voter, action=action,
                                                           comment=comment)  # fmt: skip
        except ValueError as exc:
            raise ApprovalError(str(exc), code=ErrorCode.APPROVAL_INVALID, field="action") from exc
        _audit(conn, approver.voter, "approval.decided", str(row.id),
               {"action": action, "status": status, "guardrail": (request.get("guardrail") or {}).get("rule"),
                "comment": comment})  # fmt: skip
    dispatch.send(sent)
    return Outcome(status, 1, 1, voters=[approver.voter])


_DUE = (
    select(*_OPEN_COLUMNS)
    .where(
        _approvals.c.status == status_literal("pending"),
        _approvals.c.deadline.is_not(None),
        _approvals.c.deadline < func.now(),
    )
    .order_by(_approvals.c.deadline)
    .limit(bindparam("n"))
    .with_for_update(skip_locked=True)
)


def expire_due(*, database_url: str | None = None, limit: int = 100) -> int:
    """Apply the deadline of every overdue approval (reject, approve or escalate); returns how many."""
    sent: list[executor.Dispatch] = []
    with _db(database_url).begin() as conn:
        rows = conn.execute(_DUE, {"n": limit}).all()
        for row in rows:
            sent += _expire(conn, row)
    dispatch.send(sent)
    return len(rows)


def _expire(conn: Connection, row: Any) -> list[executor.Dispatch]:
    request = row.request or {}
    step = waiting.waiting_step(conn, str(row.step_id))
    if step is None:  # the run ended some other way; nothing to resume
        conn.execute(update(_approvals).values(status="cancelled").where(_approvals.c.id == row.id))
        return []
    node_type, resume = _resumable(step)
    cfg = _config(request, conn, step, node_type)
    decision = node_type.on_expiry(cfg) if node_type.on_expiry is not None else None
    if decision is None:
        role = str(request.get("escalate_to_role") or "")
        extra = bindparam("extra", {"escalated_to_role": role}, type_=JSONB)
        conn.execute(
            update(_approvals)
            .values(deadline=None, request=_approvals.c.request.op("||")(extra))
            .where(_approvals.c.id == row.id)
        )
        events.emit(conn, events.APPROVAL_REQUESTED, step.run_id, approval_id=str(row.id), step_id=step.step_id,
                    node_id=step.node_id, title=request.get("title", ""), escalated_to_role=role)  # fmt: skip
        _audit(conn, EXPIRED_BY, "approval.escalated", str(row.id), {"to_role": role})
        return []
    decision["data"] = step.inputs.get("in")
    outputs = resume(cfg, decision, expired=True)
    _audit(conn, EXPIRED_BY, "approval.expired", str(row.id), {"action": decision["action"]})
    return _close(
        conn, row, step, status="expired", decision=decision, outputs=outputs, decided_by=EXPIRED_BY
    )


# ---------------------------------------------------------------------------------------------
# Listing: the one rule of who sees an approval is `may_decide`, applied before any limit.

CLOSED = ("approved", "rejected", "decided", "expired", "cancelled")
_ORDERS = {
    "newest": (_approvals.c.created_at.desc(), _approvals.c.id.desc()),
    "oldest": (_approvals.c.created_at, _approvals.c.id),
    "decided": (_approvals.c.decided_at.desc().nulls_last(), _approvals.c.id.desc()),
}


@dataclass(frozen=True)
class ApprovalSummary:
    """An approval as lists show it, with its workflow's name and the votes cast so far."""

    id: uuid.UUID
    run_id: uuid.UUID
    node_id: str
    status: str
    title: str
    body: str
    request: dict[str, Any] | None
    deadline: datetime | None
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    workflow: str | None  # None for a run of an unsaved definition
    votes: int = 0
    voted: bool = False  # whether the approver asking has voted on it
    workspace_id: uuid.UUID | None = None  # the workspace of its run


def _summaries(voter: str) -> Select:
    runs, workflows = _runs, table_of(Workflow)
    votes = select(func.count()).where(_votes.c.approval_id == _approvals.c.id).scalar_subquery()
    mine = exists().where(_votes.c.approval_id == _approvals.c.id, _votes.c.voter == voter)
    return select(
        *(_approvals.c[f.name] for f in fields(ApprovalSummary) if f.name in _approvals.c),
        workflows.c.name.label("workflow"), votes.label("votes"), mine.label("voted"),
        runs.c.workspace_id.label("workspace_id"),
    ).select_from(
        _approvals.join(runs, runs.c.id == _approvals.c.run_id).outerjoin(
            workflows, workflows.c.id == runs.c.workflow_id
        )
    )  # fmt: skip


def list_decidable(
    approver: Approver,
    status: str | Sequence[str] = "pending",
    limit: int = 100,
    offset: int = 0,
    *,
    search: str = "",
    order: str = "newest",
    include_voted: bool = False,
    workspaces: WorkspaceRoles | None = None,
    database_url: str | None = None,
) -> list[ApprovalSummary]:
    """Approvals in `status` that `approver` may decide, `offset` of them skipped, at most `limit`.

    `search` matches the title or the workflow's name; `order` is newest, oldest or decided (last
    decided first); `include_voted` also lists the ones they voted on, search or not. Rows are
    filtered before they are counted, so an approval never hides behind ones the approver may
    not see. With `workspaces` (the Inbox and the API pass the caller's), only approvals of those
    workspaces are listed, each judged with the approver's role in its workspace.
    """
    roles = [approver.role] if workspaces is None else list(workspaces.values())
    if not include_voted and not any(at_least(r, DECIDER_ROLE) for r in roles):
        return []
    statuses = [status] if isinstance(status, str) else list(status)
    query = _summaries(approver.voter).where(_approvals.c.status.in_(statuses)).order_by(*_ORDERS[order])
    if workspaces is not None:
        query = query.where(_runs.c.workspace_id.in_([_workspace_key(w) for w in workspaces]))
    term = search.strip().lower()
    found: list[ApprovalSummary] = []
    with _db(database_url).connect() as conn:
        for row in conn.execution_options(yield_per=200).execute(query):
            item = ApprovalSummary(**row._mapping)
            matches = not term or term in item.title.lower() or term in (item.workflow or "").lower()
            judged = (
                approver if workspaces is None else replace(approver, role=workspaces[str(item.workspace_id)])
            )
            if not ((matches and may_decide(item.request or {}, judged)) or (include_voted and item.voted)):
                continue
            if offset:
                offset -= 1
                continue
            found.append(item)
            if len(found) >= limit:
                break
    return found


def _workspace_key(workspace_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(workspace_id))
    except ValueError:
        return uuid.UUID(int=0)  # names no workspace


def get_decidable(
    approval_id: str | uuid.UUID,
    approver: Approver,
    *,
    workspaces: WorkspaceRoles | None = None,
    database_url: str | None = None,
) -> ApprovalSummary | None:
    """One approval `approver` may decide; None when it does not exist, is not theirs or (with
    `workspaces`) is of a workspace they are not a member of."""
    try:
        wanted = uuid.UUID(str(approval_id))
    except ValueError:
        return None
    with _db(database_url).connect() as conn:
        row = conn.execute(_summaries(approver.voter).where(_approvals.c.id == wanted)).first()
    row, approver = _scoped(row, approver, workspaces)
    if row is None or not may_decide(row.request or {}, approver):
        return None
    return ApprovalSummary(**row._mapping)


def count_pending(*, workspace_id: str | None = None, database_url: str | None = None) -> int:
    """How many approvals wait for a decision (whoever may decide; of one workspace's runs when given)."""
    with _db(database_url).connect() as conn:
        query = select(func.count()).select_from(_approvals).where(_approvals.c.status == "pending")
        if workspace_id is not None:
            ids = select(_runs.c.id).where(_runs.c.workspace_id == _workspace_key(workspace_id))
            query = query.where(_approvals.c.run_id.in_(ids))
        return conn.execute(query).scalar_one()
