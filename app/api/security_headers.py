"""Security headers on every HTTP response: API, Reflex pages, static files, redirects and errors.

The Reflex build has a few inline <script> blocks (theme, React Router context, streamed hydration);
instead of 'unsafe-inline' for scripts, each HTML response gets the sha256 of exactly the inline scripts
it carries. Scripts keep 'unsafe-eval' (Reflex evaluates the JavaScript of server-sent events such as
toasts) and styles 'unsafe-inline' (Emotion and Radix write <style> tags at run time).

"Served over HTTPS" means the ASGI scheme is https, or the direct peer is one of
FLOWLOOM_TRUSTED_PROXIES and says `X-Forwarded-Proto: https`; nobody else's X-Forwarded-Proto counts.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
import zlib
from functools import lru_cache

import anyio
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import routes
from app.error_html import error_html, is_page_path
from engine.settings import get_settings
from engine.web_hosts import is_loopback_name, split_host

log = logging.getLogger(__name__)

MAX_HTML_BYTES = 4_000_000  # larger HTML is sent without script hashes (its inline scripts are blocked)
HSTS = "max-age=31536000"
# Not for pages: JSON, files, errors. Nothing in them may run, load or be framed.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
FIXED_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
# FastAPI's Swagger UI (/api/docs) loads its script and styles from jsDelivr.
_DOCS_CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(rb"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.I | re.S)
_SAFE_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


@lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def served_over_https(scope: Scope) -> bool:
    """Whether the browser reached us over TLS: directly, or through a proxy in FLOWLOOM_TRUSTED_PROXIES."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    proxies = get_settings().trusted_proxies
    client = scope.get("client")
    if not proxies or not client:
        return False
    try:
        peer = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if not any(peer in network for network in _networks(tuple(proxies))):
        return False
    proto = Headers(scope=scope).get("x-forwarded-proto", "")
    return proto.split(",")[0].strip().lower() == "https"


def script_hashes(html: bytes) -> list[str]:
    """CSP sources ('sha256-...') for every inline script of an HTML document."""
    found = dict.fromkeys(
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    return list(found)


def page_csp(scope: Scope, html: bytes, https: bool) -> str:
    """The Content-Security-Policy of one HTML document (a Reflex page, or the API docs)."""
    # 'unsafe-eval': Reflex runs the scripts an event handler sends back (every rx.toast, call_script)
    # through eval(); without it no toast appears. Injected <script> stays blocked by the hashes.
    scripts = ["'self'", "'unsafe-eval'", *script_hashes(html)]
    styles, images = ["'self'", "'unsafe-inline'"], ["'self'"]
    connect = ["'self'"]
    host = Headers(scope=scope).get("host", "")
    if _SAFE_HOST.match(host):  # the event socket, spelled out for browsers whose 'self' omits ws:
        connect.append(f"{'wss' if https else 'ws'}://{host}")
    if scope.get("path", "").startswith(routes.API_DOCS):
        scripts.append(_DOCS_CDN)
        styles.append(_DOCS_CDN)
        images.append("https://fastapi.tiangolo.com")
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src {' '.join(scripts)}",
            f"style-src {' '.join(styles)}",
            f"img-src {' '.join(images)} data: blob:",
            "font-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def _decoded(body: bytes, encoding: str) -> bytes | None:
    """The HTML a gzip/identity body holds, or None when it cannot be read within MAX_HTML_BYTES."""
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        return None
    try:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        html = inflater.decompress(body, MAX_HTML_BYTES)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else html


async def _read_small(path: str) -> bytes | None:
    """The file a server is asked to send (http.response.pathsend), when it is small enough to read."""
    file = anyio.Path(path)
    try:
        if (await file.stat()).st_size > MAX_HTML_BYTES:
            return None
        return await file.read_bytes()
    except OSError:
        return None


def _loopback_host(scope: Scope) -> bool:
    return is_loopback_name(split_host(Headers(scope=scope).get("host", ""))[0])


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers above to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = served_over_https(scope)
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal start, size, started
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                self._add_fixed(headers, scope, https)
                html = headers.get("content-type", "").startswith("text/html")
                if message["status"] == 304 or "content-security-policy" in headers:
                    pass  # a 304 must not replace the page's stored policy
                elif not html:
                    headers["content-security-policy"] = STRICT_CSP
                else:
                    start = message  # held until the body is complete: its scripts decide the policy
                    return
                started = True
                await send(message)
                return
            if start is None:
                await send(message)
                return
            if message["type"] == "http.response.pathsend":  # the server sends the file itself
                started, held, start = True, start, None
                await self._release(scope, send, held, await _read_small(message["path"]), https, message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if more and size <= MAX_HTML_BYTES:
                return
            started, held, start = True, start, None
            body = b"".join(chunks)
            message = {"type": "http.response.body", "body": body, "more_body": more}
            await self._release(scope, send, held, None if more else body, https, message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:  # the error page Starlette would send next goes out with headers
                await self._send_error(scope, send, https)
            raise

    def _add_fixed(self, headers: MutableHeaders, scope: Scope, https: bool) -> None:
        for name, value in FIXED_HEADERS.items():
            if name not in headers:
                headers[name] = value
        if https and "strict-transport-security" not in headers and not _loopback_host(scope):
            headers["strict-transport-security"] = HSTS

    async def _release(
        self, scope: Scope, send: Send, start: Message, body: bytes | None, https: bool, message: Message
    ) -> None:
        """Send the held start of an HTML response with the policy its body calls for, then `message`."""
        headers = MutableHeaders(scope=start)
        encoding = headers.get("content-encoding", "").strip().lower()
        html = None if body is None else _decoded(body, encoding)
        if html is None:
            log.warning("%s: HTML sent without script hashes (too large or not gzip)", scope.get("path"))
        headers["content-security-policy"] = page_csp(scope, html or b"", https)
        await send(start)
        await send(message)

    async def _send_error(self, scope: Scope, send: Send, https: bool) -> None:
        # A page gets the app's error page (app/error_html.py), anything else two plain words.
        page = is_page_path(scope.get("path", ""))
        body = (
            error_html(500, "The server failed to answer. Try again; if it keeps failing, tell your admin.",
                       scope.get("path", "")).encode()
            if page else b"Internal Server Error"
        )  # fmt: skip
        start: Message = {"type": "http.response.start", "status": 500, "headers": []}
        headers = MutableHeaders(scope=start)
        headers["content-type"] = "text/html; charset=utf-8" if page else "text/plain; charset=utf-8"
        headers["content-length"] = str(len(body))
        headers["content-security-policy"] = page_csp(scope, body, https) if page else STRICT_CSP
        self._add_fixed(headers, scope, https)
        await send(start)
        await send({"type": "http.response.body", "body": body})


def install(api: FastAPI) -> None:
    """Add SecurityHeaders to the API app as its outermost middleware (call it last)."""
    api.add_middleware(SecurityHeaders)
