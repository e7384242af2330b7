"""SQLModel tables and the session/engine factory."""

from models.db import get_engine, make_engine, session_scope
from models.tables import Approval, Event, Run, StepRun, Workflow, WorkflowVersion

__all__ = [
    "Approval",
    "Event",
    "Run",
    "StepRun",
    "Workflow",
    "WorkflowVersion",
    "get_engine",
    "make_engine",
    "session_scope",
]
