"""POST /api/validate: check a workflow definition without saving or running it."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.callers import Caller
from app.api.schemas import ValidateRequest, ValidationPublic
from app.api.versions import report_public
from engine.validate import validate_data

router = APIRouter(tags=["workflows"])


@router.post("/validate", response_model=ValidationPublic)
def validate_definition(body: ValidateRequest, principal: Caller) -> ValidationPublic:
    """Every issue at once (code, node id, edge id, field, severity) and, when there is no error, the
    execution plan's phases. A definition that does not parse is one `definition_invalid` issue at the
    place the parser names. The answer is 200 whatever it finds: `ok` says whether it may run."""
    _, report = validate_data(body.definition, workspace_id=principal.workspace_id)
    return report_public(report)
