"""The Host allow-list (FLOWLOOM_ALLOWED_HOSTS) as pure ASGI middleware, for HTTP and the event socket.

A Host outside the list gets 400 on HTTP and a refused handshake on the socket: that stops DNS
rebinding against a loopback bind and Host-header poisoning of the URLs the app builds (sign-in
callbacks). Always served: loopback names (localhost, *.localhost, 127.0.0.0/8, ::1), and a Host that is
the literal address the connection reached (no DNS name in between, so nothing to rebind).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.problems import problem_messages
from engine.errors import ErrorCode
from engine.settings import get_settings
from engine.web_hosts import host_allowed, split_host


class TrustedHosts:
    """Pure ASGI middleware: refuse requests and socket handshakes whose Host is not served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if host_allowed(host, get_settings(), scope.get("server")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect; closing now refuses the handshake (HTTP 403)
            await send({"type": "websocket.close", "code": 1008, "reason": "host not allowed"})
            return
        shown = host[:100]
        detail = (
            f"Host {shown!r} is not served here; add {split_host(shown)[0]!r} to "
            "FLOWLOOM_ALLOWED_HOSTS (a JSON list) if browsers reach Flowloom by that name"
        )
        for message in problem_messages(ErrorCode.HOST_NOT_ALLOWED, detail):
            await send(message)


def install(api: FastAPI) -> None:
    """Add TrustedHosts to the API app (before SecurityHeaders, so its 400 gets the headers too)."""
    api.add_middleware(TrustedHosts)
