"""Errors of the OpenAI-compatible API (/v1) in OpenAI's shape: {"error": {message, type, param, code}}.

Everything else in front of /v1 (the auth gate, the body cap, the host check, FastAPI's own
validation) answers RFC 9457 problem+json. `OpenAIErrors` rewrites exactly those answers for
/v1 paths, so OpenAI clients read a message and raise their usual exception types; every other
response (a completion, a stream) passes untouched and unbuffered.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import routes
from app.problems import MEDIA_TYPE

# A problem code as the OpenAI error `code` clients switch on, when they differ.
_CODES = {
    "api_key_unknown": "invalid_api_key",
    "sign_in_required": "invalid_api_key",
    "rate_limited": "rate_limit_exceeded",
    "request_invalid": "invalid_request",
}


def error_type(status: int) -> str:
    """OpenAI's error `type` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(
    status: int,
    message: str,
    code: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-style error answer."""
    body = {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_problem(problem: dict[str, Any], status: int) -> tuple[int, dict[str, Any]]:
    """(status, OpenAI error body) for a problem document; a malformed request answers 400, as OpenAI's does."""
    code = str(problem.get("code") or "error")
    param = problem.get("field")
    errors = problem.get("errors") or problem.get("issues") or []
    if param is None and errors and isinstance(errors[0], dict):
        loc = errors[0].get("loc") or errors[0].get("field")
        param = ".".join(str(p) for p in loc[1:] or loc) if isinstance(loc, list) else loc
    if code == "request_invalid":
        status = 400
    body = {
        "error": {
            "message": str(problem.get("detail") or problem.get("title") or "error"),
            "type": error_type(status),
            "param": param,
            "code": _CODES.get(code, code),
        }
    }
    return status, body


class OpenAIErrors:
    """Pure ASGI middleware: problem+json answers to /v1 requests become OpenAI error objects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path == routes.OPENAI_PREFIX or path.startswith(routes.OPENAI_PREFIX + "/")
        ):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = MutableHeaders(raw=list(message.get("headers", []))).get("content-type", "")
                if content_type.startswith(MEDIA_TYPE):
                    start = message  # hold it: the body decides what goes out
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            try:
                problem = json.loads(b"".join(chunks) or b"{}")
            except ValueError:
                problem = {}
            status, body = from_problem(problem if isinstance(problem, dict) else {}, start["status"])
            raw = json.dumps(body).encode()
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            headers["content-type"] = "application/json"
            headers["content-length"] = str(len(raw))
            await send({**start, "status": status, "headers": headers.raw})
            await send({"type": "http.response.body", "body": raw, "more_body": False})

        await self.app(scope, receive, rewrite)


def install(api: FastAPI) -> None:
    """Put the translation in front of everything that may refuse a /v1 request."""
    api.add_middleware(OpenAIErrors)
