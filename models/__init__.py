"""SQLModel tables and the session/engine factory."""

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
from models.memory import EMBEDDING_DIM, MemoryChunk, Secret
from models.tables import Approval, Event, Run, StepRun, Workflow, WorkflowVersion
from models.triggers import ChatSession, DeadLetter, IdempotencyKey, KafkaOffset, Trigger, TriggerDelivery

__all__ = [
    "EMBEDDING_DIM",
    "ApiKey",
    "ApprovalVote",
    "AuditLog",
    "AuthThrottle",
    "RevokedSession",
    "UsedOidcState",
    "MemoryChunk",
    "Secret",
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
