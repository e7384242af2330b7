"""The workspace a page's events act in: the caller's current one.

States pass it to the engine's doors as `workspace_id`, so a page lists that workspace's objects
only and an id of another workspace's object finds nothing (the page shows "not found").
"""

from __future__ import annotations

from reflex.state import BaseState

from app.auth.guard import caller_of

# Names no workspace: a caller who is a member of none sees a workspace that has nothing.
NO_WORKSPACE = "00000000-0000-0000-0000-000000000000"


def current_workspace(state: BaseState) -> str:
    """The id of the workspace the caller of `state`'s event acts in (NO_WORKSPACE when none)."""
    principal = caller_of(state)
    return (principal.workspace_id if principal else "") or NO_WORKSPACE
