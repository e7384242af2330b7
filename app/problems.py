"""Every refusal of the API as an RFC 9457 problem: `application/problem+json`, one status per code.

A problem is `{"type", "title", "status", "detail", "code"}`, plus `node_id` and `field` when the
error says where, `issues` for a validation error and `errors` for a malformed request. `type` is
`https://flowloom.dev/problems/<code>`: an identifier per code (RFC 9457 lets a type URI be one
that does not resolve); `detail` is `engine.errors.user_message(exc)`, the text the UI shows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from engine.db_errors import describe_db_error
from engine.errors import ErrorCode, FlowloomError, ValidationError, title_of, user_message

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://flowloom.dev/problems/"

_C = ErrorCode
# The HTTP status of every code, in one place (a test checks that none is missing).
STATUS: dict[ErrorCode, int] = {
    _C.FAILED: 500, _C.SETTING_INVALID: 503, _C.DEFINITION_INVALID: 422, _C.VALIDATION_FAILED: 422,
    _C.STEP_FAILED: 500, _C.STEP_TIMEOUT: 504, _C.POLICY_VIOLATION: 403, _C.EGRESS_REFUSED: 403, _C.SECRET_INVALID: 422,
    _C.SECRET_EXISTS: 409, _C.APPROVAL_CONFLICT: 409, _C.USER_REFUSED: 409, _C.API_KEY_INVALID: 422,
    _C.EDIT_REFUSED: 422,
    _C.REQUEST_INVALID: 422, _C.NOT_FOUND: 404, _C.METHOD_NOT_ALLOWED: 405, _C.CONFLICT: 409,
    _C.SIGN_IN_REQUIRED: 401, _C.API_KEY_UNKNOWN: 401, _C.FORBIDDEN: 403, _C.NOT_IN_POLICY: 403,
    _C.CROSS_SITE_REFUSED: 403, _C.HOST_NOT_ALLOWED: 400, _C.BODY_TOO_LARGE: 413, _C.RATE_LIMITED: 429,
    _C.RUN_QUOTA_EXCEEDED: 429,
    _C.DATABASE_UNAVAILABLE: 503, _C.DATABASE_ERROR: 500, _C.WORKFLOW_NOT_FOUND: 404,
    _C.VERSION_NOT_FOUND: 404, _C.RUN_NOT_FOUND: 404, _C.RUN_ENDED: 409, _C.INLINE_NEEDS_EDITOR: 403,
    _C.RUN_NOT_ENDED: 409, _C.RERUN_STEP_INVALID: 422,
    _C.VERSION_NOT_PUBLISHED: 403, _C.VERSION_STATE: 409, _C.SELF_REVIEW: 403,
    _C.SECRET_NOT_FOUND: 404, _C.USER_NOT_FOUND: 404, _C.API_KEY_NOT_FOUND: 404, _C.KEY_NEEDS_SESSION: 403,
    _C.WORKSPACE_NOT_FOUND: 404, _C.WORKSPACE_INVALID: 422, _C.NO_WORKSPACE: 403,
    _C.SHARE_NOT_FOUND: 404, _C.SHARE_INVALID: 422,
    _C.APPROVAL_NOT_FOUND: 404, _C.APPROVAL_FORBIDDEN: 403, _C.APPROVAL_INVALID: 422,
    _C.TRIGGER_NOT_FOUND: 404, _C.TRIGGER_PAUSED: 409, _C.SIGNATURE_INVALID: 401,
    _C.TIMESTAMP_OUT_OF_RANGE: 401, _C.IDEMPOTENCY_MISMATCH: 422, _C.DEAD_LETTER_NOT_FOUND: 404,
    _C.CHAT_SESSION_NOT_FOUND: 404, _C.CHAT_BUSY: 409,
    _C.AGENT_NOT_FOUND: 404, _C.AGENT_TRANSITION_INVALID: 409, _C.AGENT_NOT_READY: 409,
    _C.AGENT_CHECK_FAILED: 422, _C.NO_CAPABLE_AGENT: 422,
    # Sign-in refusals end as /login?error=<code>; these statuses are for any other caller.
    _C.STATE: 400, _C.ID_TOKEN: 401, _C.ISSUER: 401, _C.PROVIDER_REFUSED: 401, _C.PROVIDER_UNAVAILABLE: 502,
    _C.UNKNOWN_PROVIDER: 404, _C.INACTIVE: 403, _C.BAD_CREDENTIALS: 401, _C.TOO_MANY_ATTEMPTS: 429,
    _C.SETUP_CODE: 403, _C.SETUP_DONE: 409, _C.PASSWORD_SHORT: 422, _C.PASSWORD_LONG: 422,
    _C.PASSWORDS_DIFFER: 422, _C.EMAIL: 422,
    # Validation issues, when one is raised on its own.
    _C.INVALID: 422, _C.DUPLICATE_ID: 422, _C.BAD_ID: 422, _C.UNKNOWN_NODE_TYPE: 422, _C.CONFIG_INVALID: 422,
    _C.TEMPLATE_NOT_ALLOWED: 422, _C.BAD_TEMPLATE: 422, _C.BAD_CONDITION: 422, _C.DANGLING_EDGE: 422,
    _C.DUPLICATE_EDGE: 422, _C.SELF_LOOP: 422, _C.UNKNOWN_PORT: 422, _C.PORT_TYPE_MISMATCH: 422,
    _C.UNCONNECTED_INPUT: 422, _C.INPUTS_INVALID: 422, _C.INPUT_INVALID: 422, _C.MISSING_START: 422,
    _C.MULTIPLE_START: 422, _C.MISSING_END: 422, _C.UNREACHABLE: 422, _C.NO_PATH_TO_TERMINAL: 422,
    _C.CYCLE: 422, _C.TRIGGER_INVALID: 422, _C.DSL_UNSUPPORTED: 422, _C.ON_ERROR_MISMATCH: 422, _C.UNKNOWN_REFERENCE: 422,
    # Step failures (shown on the step; a route raising one answers with these).
    _C.INPUT_MISSING: 422, _C.LLM_REPLY_INVALID: 502, _C.AGENT_MAX_ITERATIONS: 422,
    _C.OUTPUT_SCHEMA_MISMATCH: 422, _C.UNKNOWN_TOOL: 422, _C.CONNECTION_UNKNOWN: 422, _C.PAYLOAD_INVALID: 422,
    _C.MODEL_NOT_FOUND: 404,
    _C.SUBWORKFLOW_RECURSION: 422, _C.SUBWORKFLOW_DEPTH: 422, _C.CHILD_RUN_FAILED: 500,
    _C.GENERATION_REFUSED: 422, _C.GENERATION_FAILED: 502,
    _C.CODE_FAILED: 422, _C.SANDBOX_LIMIT: 422, _C.SANDBOX_UNAVAILABLE: 503, _C.CIRCUIT_OPEN: 503,
    _C.GUARDRAIL_VIOLATED: 403, _C.GUARDRAIL_INVALID: 422,
}  # fmt: skip

# The code of an HTTPException raised without one (FastAPI's own, or a dependency's).
_CODE_OF_STATUS: dict[int, ErrorCode] = {
    400: _C.REQUEST_INVALID,  # FastAPI's "There was an error parsing the body"
    401: _C.SIGN_IN_REQUIRED, 403: _C.FORBIDDEN, 404: _C.NOT_FOUND, 405: _C.METHOD_NOT_ALLOWED,
    409: _C.CONFLICT, 413: _C.BODY_TOO_LARGE, 422: _C.REQUEST_INVALID, 429: _C.RATE_LIMITED,
    503: _C.DATABASE_UNAVAILABLE,
}  # fmt: skip


def problem(
    code: ErrorCode,
    detail: str,
    *,
    status: int | None = None,
    node_id: str | None = None,
    field: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The problem document of `code` (its status unless `status` is given) with `detail`."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code.value,
        "title": title_of(code),
        "status": status or STATUS[code],
        "detail": detail,
        "code": code.value,
    }
    if node_id is not None:
        body["node_id"] = node_id
    if field is not None:
        body["field"] = field
    return {**body, **extra}


def problem_of(exc: FlowloomError) -> dict[str, Any]:
    """The problem document of a FlowloomError: its code, message and where."""
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationError):
        extra["issues"] = [i.to_dict() for i in exc.issues]
    return problem(exc.code, user_message(exc), node_id=exc.node_id, field=exc.field, **extra)


def problem_response(
    code: ErrorCode, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json answer with the status of `code`."""
    body = problem(code, detail, **extra)
    return JSONResponse(body, status_code=body["status"], headers=headers, media_type=MEDIA_TYPE)


def error_response(exc: FlowloomError, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The problem+json answer to a FlowloomError."""
    body = problem_of(exc)
    return JSONResponse(body, status_code=body["status"], headers=headers, media_type=MEDIA_TYPE)


def problem_messages(
    code: ErrorCode, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[Message, Message]:
    """The two ASGI messages of a problem answer, for middleware that sends raw messages."""
    body = json.dumps(problem(code, detail)).encode()
    start: Message = {
        "type": "http.response.start",
        "status": STATUS[code],
        "headers": [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


async def _flowloom_error(request: Request, exc: FlowloomError) -> JSONResponse:
    if STATUS[exc.code] >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(exc)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _CODE_OF_STATUS.get(exc.status_code, _C.FAILED)
    detail = exc.detail if isinstance(exc.detail, str) else title_of(code)
    body = problem(code, detail, status=exc.status_code)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers, media_type=MEDIA_TYPE)


async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each wrong field; never the submitted values (they may be secrets)."""
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem_response(_C.REQUEST_INVALID, detail or "the request is invalid", errors=errors)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return problem_response(_C.DATABASE_UNAVAILABLE, describe_db_error(exc))


async def _unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    """422 for a value PostgreSQL refuses to store: a request sent it (the text of the error may quote it)."""
    log.warning(
        "%s %s: the database refused a value (%s)", request.method, request.url.path, type(exc).__name__
    )
    detail = (
        "the request holds a value the database cannot store: a NUL character (\\u0000) in a text, "
        "or a number out of range"
    )
    return problem_response(_C.REQUEST_INVALID, detail)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(_C.DATABASE_ERROR, describe_db_error(exc))


def install(api: FastAPI) -> None:
    """Answer FlowloomErrors, HTTP errors, malformed requests and database errors as problem+json."""
    api.add_exception_handler(FlowloomError, _flowloom_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_exception_handler(RequestValidationError, _request_invalid)
    api.add_exception_handler(OperationalError, _database_unavailable)
    api.add_exception_handler(DataError, _unstorable_value)
    api.add_exception_handler(SQLAlchemyError, _database_error)
