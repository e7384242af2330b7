"""Request bodies are capped before they reach memory: a pure ASGI middleware in front of everything.

A declared Content-Length over the cap is answered 413 at once, before a byte of the body is read.
A body of unknown length (chunked) is counted as it streams through; the request is answered 413
as soon as it passes the cap, so nothing behind this middleware ever holds more than the cap.
Endpoints anyone may call without signing in (the PUBLIC entries of app.auth.policy: sign-in,
first-run setup) get the tighter FLOWLOOM_MAX_ANONYMOUS_BODY_BYTES; everything else, Reflex's
/_upload and event endpoints included, FLOWLOOM_MAX_BODY_BYTES. Public routes that authenticate
their own requests (policy.SELF_AUTHENTICATED: inbound webhooks) cap the body themselves, at the
trigger's max_body_bytes, while streaming it; here they get FLOWLOOM_MAX_BODY_BYTES as the outer bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.policy import API_POLICY, PUBLIC, SELF_AUTHENTICATED
from app.problems import problem_messages
from engine.errors import ErrorCode
from engine.settings import get_settings

_PARAM = re.compile(r"\{([^}:]+)(:path)?\}")


@dataclass(frozen=True)
class _Limit:
    bytes: int
    setting: str


class _BodyTooLarge(Exception):
    """Raised from receive() once the body passes the cap; turned into the 413 here."""


def _template_regex(template: str) -> re.Pattern[str]:
    """A FastAPI path template ("/auth/login/{provider}") as a regular expression."""
    parts, last = [], 0
    for match in _PARAM.finditer(template):
        parts += [re.escape(template[last : match.start()]), ".*" if match[2] else "[^/]+"]
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("^" + "".join(parts) + "$")


def _anonymous_routes() -> list[tuple[str, re.Pattern[str]]]:
    return [
        (method, _template_regex(path))
        for (method, path), access in API_POLICY.items()
        if access == PUBLIC and (method, path) not in SELF_AUTHENTICATED
    ]


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header, when there is one that is a number (the largest, if repeated)."""
    values = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
    numbers = [int(v) for v in values if v.strip().isdigit()]
    return max(numbers) if numbers else None


def _refusal(limit: _Limit, path: str) -> tuple[Message, Message]:
    detail = (
        f"the request body is larger than {limit.bytes:,} bytes, the most {path} accepts ({limit.setting}); "
        "send a smaller body"
    )
    # Connection: close, because the rest of the body is not worth reading.
    return problem_messages(ErrorCode.BODY_TOO_LARGE, detail, [(b"connection", b"close")])


class BodyLimit:
    """Answer 413 to request bodies over the cap, declared or counted while streaming."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.anonymous = _anonymous_routes()

    def limit_for(self, method: str, path: str) -> _Limit:
        """The cap for a request: tighter on endpoints that need no sign-in."""
        settings = get_settings()
        method = "GET" if method == "HEAD" else method
        if any(m == method and pattern.match(path) for m, pattern in self.anonymous):
            return _Limit(settings.max_anonymous_body_bytes, "FLOWLOOM_MAX_ANONYMOUS_BODY_BYTES")
        return _Limit(settings.max_body_bytes, "FLOWLOOM_MAX_BODY_BYTES")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limit_for(scope.get("method", "GET").upper(), path)
        refusal = _refusal(limit, path)
        declared = _declared_length(scope)
        if declared is not None and declared > limit.bytes:
            for message in refusal:
                await send(message)
            return
        received = 0
        exceeded = started = refused = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def refuse() -> None:
            nonlocal refused
            if not refused:
                refused = True
                for message in refusal:
                    await send(message)

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                await refuse()  # whatever the app made of the exception, the answer is 413
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            # _BodyTooLarge, or whatever the app turned it into
        if exceeded and not started:
            await refuse()


def install(api: FastAPI) -> None:
    """Cap request bodies in front of the auth gate (add it after app.api.auth.install)."""
    api.add_middleware(BodyLimit)
