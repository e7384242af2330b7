"""Tables for people and access: users, API keys, per-workflow sharing, approval votes, audit log."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Identity, Index, UniqueConstraint, false
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables import utcnow
from models.workspace_column import workspace_column


class User(SQLModel, table=True):
    """A person, created on first sign-in (unique by issuer + subject) or the local admin."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_user_identity"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    issuer: str = Field(max_length=500)  # the OIDC issuer URL, or "local"
    subject: str = Field(max_length=255)
    email: str = Field(default="", max_length=320, index=True)
    # True only when the provider said so (`email_verified`) or for the local account.
    email_verified: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    name: str = Field(default="", max_length=200)
    role: str = Field(default="viewer", max_length=20)  # admin | editor | operator | viewer
    password_hash: str | None = Field(default=None, max_length=500)  # local accounts only (argon2)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    last_login_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class ApiKey(SQLModel, table=True):
    """A REST API key: shown once, stored hashed, scoped to a role, revocable, rate limited."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = workspace_column()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16, index=True)  # shown in lists to tell keys apart
    key_hash: str = Field(max_length=200)
    role: str = Field(default="viewer", max_length=20)
    rate_limit_per_min: int = 600  # app.auth.api_keys.DEFAULT_RATE_PER_MIN
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class WorkflowShare(SQLModel, table=True):
    """One workflow shared beyond its workspace: with one user or with a whole workspace, to read or
    edit (engine/shares.py grants, revokes and applies it)."""

    __tablename__ = "workflow_shares"
    __table_args__ = (
        # Exactly one recipient; one share per recipient (a second grant changes its permission).
        CheckConstraint(
            "(shared_with_user_id IS NULL) <> (shared_with_workspace_id IS NULL)",
            name="ck_workflow_share_target",
        ),
        CheckConstraint("permission IN ('read', 'edit')", name="ck_workflow_share_permission"),
        UniqueConstraint("workflow_id", "shared_with_user_id", name="uq_workflow_share_user"),
        UniqueConstraint("workflow_id", "shared_with_workspace_id", name="uq_workflow_share_workspace"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", ondelete="CASCADE", index=True)
    shared_with_user_id: uuid.UUID | None = Field(
        default=None, foreign_key="users.id", ondelete="CASCADE", index=True
    )
    shared_with_workspace_id: uuid.UUID | None = Field(
        default=None, foreign_key="workspaces.id", ondelete="CASCADE", index=True
    )
    permission: str = Field(default="read", max_length=10)  # read | edit
    granted_by: str = Field(default="", max_length=320)  # the granter as the audit log names them
    granted_by_user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    granted_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class ApprovalVote(SQLModel, table=True):
    """One approver's decision on an approval (a quorum of N needs N votes)."""

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "voter", name="uq_approval_vote"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    approval_id: uuid.UUID = Field(foreign_key="approvals.id", ondelete="CASCADE", index=True)
    voter: str = Field(max_length=320)
    action: str = Field(max_length=50)
    form: dict | None = Field(default=None, sa_type=JSONB)
    comment: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class AuditLog(SQLModel, table=True):
    """Who did what, when, from where: every change people make (engine/audit.py writes it).

    Append-only: a trigger (migration 0011) refuses UPDATE and DELETE of any row.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True), index=True)
    actor: str = Field(default="", max_length=320, index=True)
    action: str = Field(max_length=100, index=True)
    target_type: str = Field(default="", max_length=50)
    target_id: str = Field(default="", max_length=100)
    details: dict | None = Field(default=None, sa_type=JSONB)
    ip: str = Field(default="", max_length=64)
    # Where the change came from: ui, api, cli, trigger or system ("" in entries older than 0011).
    source: str = Field(default="", max_length=20, sa_column_kwargs={"server_default": ""})
    before: dict | None = Field(default=None, sa_type=JSONB)  # the object's fields the change replaced
    after: dict | None = Field(default=None, sa_type=JSONB)


class RevokedSession(SQLModel, table=True):
    """A signed-out session: checked on every request, so sign-out holds even without Redis."""

    __tablename__ = "revoked_sessions"

    session_id: str = Field(max_length=64, primary_key=True)
    revoked_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)  # safe to delete after


class UsedOidcState(SQLModel, table=True):
    """An OIDC `state` that completed a sign-in; a second callback with it is refused."""

    __tablename__ = "used_oidc_states"

    state_hash: str = Field(max_length=64, primary_key=True)  # sha256 hex of the state value
    used_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)


class AuthThrottle(SQLModel, table=True):
    """Failed sign-in / API-key attempts per client or key prefix, with the back-off they earned."""

    __tablename__ = "auth_throttle"

    key: str = Field(max_length=200, primary_key=True)  # e.g. "ip:127.0.0.1", "key:ab12cd34", "login:x@y"
    failures: int = 0
    first_failure_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    blocked_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
