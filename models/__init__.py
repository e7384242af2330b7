"""SQLModel tables and the session/engine factory."""

from models.agents import AgentSession, SavedAgent
from models.auth import (
    ApiKey,
    ApprovalVote,
    AuditLog,
    AuthThrottle,
    RevokedSession,
    UsedOidcState,
    User,
    WorkflowShare,
)
from models.db import get_engine, make_engine, session_scope
from models.memory import EMBEDDING_DIM, KnowledgeDocument, MemoryChunk, Secret
from models.snippets import Snippet
from models.tables import Approval, Event, Run, StepRun, Workflow, WorkflowVersion
from models.triggers import ChatSession, DeadLetter, IdempotencyKey, KafkaOffset, Trigger, TriggerDelivery
from models.workspace_column import DEFAULT_WORKSPACE_ID
from models.workspaces import Workspace, WorkspaceMember

__all__ = [
    "DEFAULT_WORKSPACE_ID",
    "Workspace",
    "WorkspaceMember",
    "AgentSession",
    "SavedAgent",
    "EMBEDDING_DIM",
    "ApiKey",
    "ApprovalVote",
    "AuditLog",
    "AuthThrottle",
    "RevokedSession",
    "UsedOidcState",
    "KnowledgeDocument",
    "MemoryChunk",
    "Secret",
    "Snippet",
    "User",
    "WorkflowShare",
    "Approval",
    "Event",
    "Run",
    "StepRun",
    "Workflow",
    "WorkflowVersion",
    "ChatSession",
    "DeadLetter",
    "IdempotencyKey",
    "KafkaOffset",
    "Trigger",
    "TriggerDelivery",
    "get_engine",
    "make_engine",
    "session_scope",
]
