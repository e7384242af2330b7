"""Human approvals: who may decide, N-of-M quorum, deadlines and escalation; a decision resumes the run.

Every change locks the approval row (`SELECT ... FOR UPDATE`), so two people deciding at once are
applied one after the other: the second finds the approval decided and is told so. Votes are rows
of `approval_votes` (one per voter); the first action to gather `quorum` votes is the decision.
Deadlines are applied by the worker sweeper (`expire_due`). Each vote, decision, expiry and
escalation is written to the audit log in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from engine import dispatch, events, executor
from engine.errors import FlowloomError, StepError
from engine.roles import RANK, Role, at_least
from engine.settings import get_settings
from models.db import get_engine
from nodes.human import EXPIRED_BY, HumanApprovalConfig, expiry_decision, resume_outputs

# The least role that may decide any approval (viewers never do).
DECIDER_ROLE = Role.OPERATOR


class ApprovalError(FlowloomError):
    """A decision was not applied; `kind` is not_found, forbidden, conflict (decided/expired) or invalid."""

    def __init__(self, message: str, kind: str = "conflict") -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class Approver:
    """The person deciding: their user id, e-mail (and whether it is verified) and role."""

    user_id: str
    email: str
    role: str
    # True only when the sign-in provider vouched for the address (or it is the local account).
    email_verified: bool = False

    @property
    def trusted_email(self) -> str:
        """The e-mail, lower-cased, when verified; "" otherwise (an unverified address proves nothing)."""
        return self.email.strip().lower() if self.email_verified else ""

    @property
    def voter(self) -> str:
        """How votes name this person: the verified e-mail (two accounts of one person count once),
        else the user id, so an unverified address cannot take someone else's vote."""
        return (self.trusted_email or self.user_id).strip().lower()


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


def allowed_roles(request: dict[str, Any]) -> list[str]:
    """The roles named as approvers, plus the role it escalated to."""
    approvers = request.get("approvers") or {}
    roles = [str(r) for r in approvers.get("roles") or []]
    escalated = request.get("escalated_to_role")
    if escalated and escalated not in roles:
        roles.append(str(escalated))
    return roles


def may_decide(request: dict[str, Any], approver: Approver) -> bool:
    """True when the approver is listed by user or holds a listed role (or one above).

    A user entry matches the approver's user id, or their e-mail only when it is verified: anyone
    can type any address into an identity provider that does not check it.
    """
    if not at_least(approver.role, DECIDER_ROLE):
        return False
    users = {str(u).strip().lower() for u in (request.get("approvers") or {}).get("users") or []}
    roles = allowed_roles(request)
    if not users and not roles:
        return True
    if approver.user_id and approver.user_id.strip().lower() in users:
        return True
    if approver.trusted_email and approver.trusted_email in users:
        return True
    return any(approver.role == r or (r in RANK and at_least(approver.role, r)) for r in roles)


def _config(request: dict[str, Any], conn: Connection, step: executor.ClaimedStep) -> HumanApprovalConfig:
    """The node's config as the step rendered it (templated approvers and fields included)."""
    try:
        return HumanApprovalConfig.model_validate(
            {k: request[k] for k in HumanApprovalConfig.model_fields if k in request}
        )
    except ValueError:
        run = executor.load_run(conn, step.run_id)
        return HumanApprovalConfig.model_validate(run.graph.nodes[step.node_id].config)


def _audit(conn: Connection, actor: str, action: str, approval_id: str, details: dict[str, Any]) -> None:
    conn.execute(
        text("INSERT INTO audit_log (at, actor, action, target_type, target_id, details, ip)"
             " VALUES (now(), :actor, :action, 'approval', :id, CAST(:details AS jsonb), '')"),
        {"actor": actor[:320], "action": action, "id": approval_id, "details": json.dumps(details, default=str)},
    )  # fmt: skip


def _lock(conn: Connection, approval_id: str):
    try:
        uuid.UUID(approval_id)
    except ValueError:
        return None
    return conn.execute(
        text("SELECT id, run_id, step_id, node_id, status, request, deadline, decided_by,"
             " deadline IS NOT NULL AND deadline < now() AS expired FROM approvals WHERE id = :id FOR UPDATE"),
        {"id": approval_id},
    ).first()  # fmt: skip


def _refuse_unless_open(row: Any, approval_id: str) -> None:
    if row is None:
        raise ApprovalError(f"approval {approval_id!r} does not exist", "not_found")
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
        text("UPDATE approvals SET status = :status, decision = CAST(:d AS jsonb), decided_by = :by,"
             " decided_at = now() WHERE id = :id"),
        {"status": status, "d": json.dumps(decision, default=str), "by": decided_by, "id": row.id},
    )  # fmt: skip
    events.emit(conn, events.APPROVAL_DECIDED, step.run_id, approval_id=str(row.id), action=decision["action"],
                decided_by=decided_by, status=status)  # fmt: skip
    return executor.finish_step(conn, step, outputs=outputs, expected_status="waiting")


def decide(
    approval_id: str,
    approver: Approver,
    *,
    action: str,
    form: dict[str, Any] | None = None,
    comment: str = "",
    database_url: str | None = None,
) -> Outcome:
    """Cast the approver's vote; when it completes the quorum, decide and resume the run."""
    with _db(database_url).begin() as conn:
        row = _lock(conn, approval_id)
        _refuse_unless_open(row, approval_id)
        request = row.request or {}
        if not may_decide(request, approver):
            raise ApprovalError(
                f"{approver.voter} may not decide approval {approval_id}: it is for "
                f"{_describe_approvers(request)}{_unverified_hint(request, approver)}", "forbidden",
            )  # fmt: skip
        step = executor.waiting_step(conn, str(row.step_id))
        if step is None:
            raise ApprovalError(f"the step of approval {approval_id} is no longer waiting")
        cfg = _config(request, conn, step)
        vote = {"action": action, "form": form or {}, "comment": comment, "decided_by": approver.voter,
                "data": step.inputs.get("in")}  # fmt: skip
        try:
            outputs = resume_outputs(cfg, vote)
        except StepError as exc:
            raise ApprovalError(str(exc), "invalid") from exc
        clean_form = outputs[action]["form"]
        inserted = conn.execute(
            text("INSERT INTO approval_votes (id, approval_id, voter, action, form, comment, created_at)"
                 " VALUES (:id, :approval, :voter, :action, CAST(:form AS jsonb), :comment, now())"
                 " ON CONFLICT ON CONSTRAINT uq_approval_vote DO NOTHING RETURNING id"),
            {"id": str(uuid.uuid4()), "approval": row.id, "voter": approver.voter, "action": action,
             "form": json.dumps(clean_form), "comment": comment},
        ).first()  # fmt: skip
        if inserted is None:
            raise ApprovalError(
                f"{approver.voter} already voted on approval {approval_id}; nothing was changed"
            )
        votes = conn.execute(
            text("SELECT voter, action, form, comment, created_at FROM approval_votes"
                 " WHERE approval_id = :id ORDER BY created_at, voter"),
            {"id": row.id},
        ).mappings().all()  # fmt: skip
        same = [v for v in votes if v["action"] == action]
        _audit(conn, approver.voter, "approval.voted", str(row.id),
               {"action": action, "comment": comment, "votes": len(same), "quorum": cfg.quorum})  # fmt: skip
        if len(same) < cfg.quorum:
            return Outcome("pending", len(same), cfg.quorum, voters=[v["voter"] for v in same])
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
    return Outcome(status, len(same), cfg.quorum, outputs=outputs, voters=[v["voter"] for v in same])


def _unverified_hint(request: dict[str, Any], approver: Approver) -> str:
    """Why a listed address was not enough: the sign-in did not verify it."""
    users = {str(u).strip().lower() for u in (request.get("approvers") or {}).get("users") or []}
    if approver.email_verified or approver.email.strip().lower() not in users:
        return ""
    return (
        f" ({approver.email} is listed, but your sign-in provider did not verify that address; "
        "sign in with a provider that verifies it, or ask for your user id to be listed instead)"
    )


def _describe_approvers(request: dict[str, Any]) -> str:
    users = (request.get("approvers") or {}).get("users") or []
    roles = allowed_roles(request)
    parts = ([f"users {', '.join(users)}"] if users else []) + (
        [f"roles {', '.join(roles)}"] if roles else []
    )
    return " and ".join(parts) or f"any {DECIDER_ROLE}"


def expire_due(*, database_url: str | None = None, limit: int = 100) -> int:
    """Apply the deadline of every overdue approval (reject, approve or escalate); returns how many."""
    sent: list[executor.Dispatch] = []
    with _db(database_url).begin() as conn:
        rows = conn.execute(
            text("SELECT id, run_id, step_id, node_id, status, request, deadline, decided_by, true AS expired"
                 " FROM approvals WHERE status = 'pending' AND deadline IS NOT NULL AND deadline < now()"
                 " ORDER BY deadline LIMIT :n FOR UPDATE SKIP LOCKED"),
            {"n": limit},
        ).all()  # fmt: skip
        for row in rows:
            sent += _expire(conn, row)
    dispatch.send(sent)
    return len(rows)


def _expire(conn: Connection, row: Any) -> list[executor.Dispatch]:
    request = row.request or {}
    step = executor.waiting_step(conn, str(row.step_id))
    if step is None:  # the run ended some other way; nothing to resume
        conn.execute(text("UPDATE approvals SET status = 'cancelled' WHERE id = :id"), {"id": row.id})
        return []
    cfg = _config(request, conn, step)
    decision = expiry_decision(cfg)
    if decision is None:
        role = cfg.escalate_to_role or ""
        conn.execute(
            text("UPDATE approvals SET deadline = NULL, request = request || CAST(:extra AS jsonb) WHERE id = :id"),
            {"extra": json.dumps({"escalated_to_role": role}), "id": row.id},
        )  # fmt: skip
        events.emit(conn, events.APPROVAL_REQUESTED, step.run_id, approval_id=str(row.id), step_id=step.step_id,
                    node_id=step.node_id, title=request.get("title", ""), escalated_to_role=role)  # fmt: skip
        _audit(conn, EXPIRED_BY, "approval.escalated", str(row.id), {"to_role": role})
        return []
    decision["data"] = step.inputs.get("in")
    outputs = resume_outputs(cfg, decision, expired=True)
    _audit(conn, EXPIRED_BY, "approval.expired", str(row.id), {"action": decision["action"]})
    return _close(
        conn, row, step, status="expired", decision=decision, outputs=outputs, decided_by=EXPIRED_BY
    )
