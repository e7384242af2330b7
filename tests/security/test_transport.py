"""Transport and headers: egress ranges and redirects, security headers, Host allow-list, CORS, health.

Every request goes through the real API app (create_api, with its auth gate), a real server process, or
the engine on real workers; outbound requests only ever reach loopback servers started here.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.main import api, create_api
from app.auth import local, sessions
from app.db import db_session
from engine.ops.services import find_free_port
from engine.settings import get_settings
from tests.integration.conftest import TEST_SECRET_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {
    "Authorization": "Bearer transport-secret",
    "X-Api-Key": "transport-key",
    "Cookie": "sid=transport-session",
    "Proxy-Authorization": "Basic dHJhbnNwb3J0",
}
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def _settings(monkeypatch: pytest.MonkeyPatch, **values: object) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"FLOWLOOM_{key.upper()}", value if isinstance(value, str) else json.dumps(value))
    get_settings.cache_clear()


def _assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", response.url
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


# --- loopback servers that record what reaches them -------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            body = b""
        elif parts.path == "/.well-known/openid-configuration":
            body = json.dumps(self.server.metadata).encode()  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        else:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def loopback_servers() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    """Origin A (redirects, serves OIDC metadata) and origin B (records who calls it), on two ports."""
    started = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        server.seen = []  # type: ignore[attr-defined]
        server.metadata = {}  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield started[0], started[1]
    for server in started:
        server.shutdown()
        server.server_close()


def _origin(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


# --- egress: special-purpose ranges and redirects, through the engine on real workers ---------------


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_a_workflow_http_step_redirected_to_another_origin_sends_it_no_credentials(
    loopback_servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    from engine.runs import start_run
    from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

    a, b = loopback_servers
    hosts = [_origin(a).removeprefix("http://"), _origin(b).removeprefix("http://")]
    headers = {**CREDENTIALS, "X-Request-Label": "kept?", "Accept": "application/json"}
    defn = workflow(
        [
            node("start", "start"),
            node("same", "tool.http", url=f"{_origin(a)}/redirect?to=/echo", headers=headers),
            node("cross", "tool.http", url=f"{_origin(a)}/redirect?to={_origin(b)}/echo", headers=headers),
            node("end", "end"),
        ],
        [("start", "same"), ("same", "cross"), ("cross", "end")],
        policy={"egress": {"allowed_hosts": hosts}},
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "succeeded", (view.error, steps_by_node(view))
    same_origin_hop = a.seen[-2]  # type: ignore[attr-defined]  # A saw: same /redirect, same /echo, cross /redirect
    assert {name: same_origin_hop.get(name.lower()) for name in CREDENTIALS} == CREDENTIALS
    (at_b,) = b.seen  # type: ignore[attr-defined]
    assert not {name.lower() for name in CREDENTIALS} & set(at_b), at_b
    assert "x-request-label" not in at_b and at_b["accept"] == "application/json"


@pytest.mark.usefixtures("engine_env", "engine_worker")
@pytest.mark.parametrize(
    ("url", "egress", "named"),
    [  # allow_private lets every non-global address through, but never a metadata endpoint
        ("http://168.63.129.16/machine?comp=goalstate", {"allow_private": True}, "(Azure WireServer)"),
        ("http://198.18.0.7/", {}, "198.18.0.0/15 Benchmarking"),
        ("http://[3fff::10]/", {}, "3fff::/20 Documentation"),
        ("http://[64:ff9b:1::7]/", {}, "64:ff9b:1::/48 IPv4-IPv6 Translat. (local-use)"),
    ],
)
def test_a_workflow_cannot_reach_wireserver_or_registry_ranges_python_thinks_global(
    url: str, egress: dict, named: str
) -> None:
    from engine.runs import start_run
    from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

    defn = workflow(
        [node("start", "start"), node("fetch", "tool.http", url=url), node("end", "end")],
        [("start", "fetch"), ("fetch", "end")],
        policy={"egress": egress},
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "failed"
    error = steps_by_node(view)["fetch"]["error"]
    assert "policy violation" in error and named in error, error  # refused before any connection


def test_sign_in_provider_calls_follow_no_redirect_that_would_carry_the_token(
    auth_env: None, loopback_servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer]
) -> None:
    """authlib's httpx client must not follow a provider's redirect to another origin with our bearer token."""
    from app.auth.oidc import Registry
    from engine.settings import OIDCProvider, Settings

    a, b = loopback_servers
    a.metadata = {  # type: ignore[attr-defined]
        "issuer": _origin(a),
        "authorization_endpoint": f"{_origin(a)}/authorize",
        "token_endpoint": f"{_origin(a)}/token",
        "jwks_uri": f"{_origin(a)}/jwks",
        "userinfo_endpoint": f"{_origin(a)}/redirect?to={_origin(b)}/userinfo",
    }
    settings = Settings(oidc_providers=[OIDCProvider(name="idp", issuer=_origin(a), client_id="flowloom")])
    client = Registry(settings).oauth.create_client("idp")
    with pytest.raises(httpx.HTTPStatusError, match="302"):
        asyncio.run(client.userinfo(token={"access_token": "provider-token", "token_type": "Bearer"}))
    assert a.seen[-1]["authorization"] == "Bearer provider-token"  # type: ignore[attr-defined]
    assert b.seen == []  # type: ignore[attr-defined]


# --- security headers --------------------------------------------------------------------------------


def test_api_answers_redirects_and_refusals_all_carry_the_security_headers(
    auth_env: None, api_client
) -> None:
    keyed, anonymous = api_client("viewer"), TestClient(api)
    responses = [
        keyed.get("/api/workflows"),  # JSON
        anonymous.get("/api/workflows"),  # 401
        keyed.post("/api/workflows", json={"name": "x"}),  # 403
        anonymous.get("/api/no-such-route"),  # 404
        anonymous.post("/auth/logout", follow_redirects=False),  # 303
        anonymous.get("/api/health"),
    ]
    assert [r.status_code for r in responses[:5]] == [200, 401, 403, 404, 303]
    for response in responses:
        _assert_security_headers(response)
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" not in response.headers  # plain http


def test_an_unhandled_error_still_answers_with_the_security_headers(
    auth_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database check blew up")

    monkeypatch.setattr("app.api.health.check_database", broken)
    response = TestClient(api, raise_server_exceptions=False).get("/api/health")
    assert response.status_code == 500
    _assert_security_headers(response)
    assert "blew up" not in response.text


def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def _built_frontend(root: Path) -> tuple[str, str]:
    """A page shaped like Reflex's build (inline theme and module scripts), gzip sidecar included."""
    theme = "document.documentElement.dataset.theme = localStorage.getItem('theme') || 'light';"
    boot = 'import "/assets/entry.js";\nwindow.__reactRouterContext = {"basename": "/"};'
    html = (
        f"<!DOCTYPE html><html><head><script>{theme}</script>"
        f'<script type="module" src="/assets/entry.js"></script></head>'
        f'<body><div id="root"></div><script type="module" async="">{boot}</script></body></html>'
    )
    (root / "login").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "login" / "index.html").write_text(html)
    (root / "login" / "index.html.gz").write_bytes(gzip.compress(html.encode()))
    (root / "assets" / "entry.js").write_text("console.log('flowloom');")
    (root / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    return theme, boot


def _server_sends_files(app: ASGIApp) -> ASGIApp:
    """The app as granian runs it: the server offers http.response.pathsend and sends files itself."""

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "extensions": {**scope.get("extensions", {}), "http.response.pathsend": {}}}

        async def send_files(message: Message) -> None:
            if message["type"] == "http.response.pathsend":
                message = {"type": "http.response.body", "body": Path(message["path"]).read_bytes()}
            await send(message)

        await app(scope, receive, send_files)

    return server


@pytest.mark.parametrize("pathsend", [False, True])
@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_pages_allow_exactly_their_own_inline_scripts_and_files_get_the_strict_policy(
    auth_env: None, tmp_path: Path, encoding: str, pathsend: bool
) -> None:
    from reflex.utils.precompressed_staticfiles import PrecompressedStaticFiles

    theme, boot = _built_frontend(tmp_path)
    app = create_api()  # as app/app.py gets it: Reflex mounts the built frontend behind the API
    app.mount("", PrecompressedStaticFiles(directory=tmp_path, html=True, encodings=["gzip"]))
    client = TestClient(_server_sends_files(app) if pathsend else app, headers={"Accept-Encoding": encoding})

    page = client.get("/login/")
    assert page.status_code == 200 and page.headers.get("content-encoding", "identity") == encoding
    _assert_security_headers(page)
    directives = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    # 'unsafe-eval' because Reflex eval()s the scripts of server-sent events (toasts); never 'unsafe-inline'
    assert directives["script-src"].split() == ["'self'", "'unsafe-eval'", _sha256(theme), _sha256(boot)]
    assert directives["style-src"] == "'self' 'unsafe-inline'"  # Emotion/Radix write <style> at run time
    assert directives["connect-src"] == "'self' ws://testserver"
    assert (directives["object-src"], directives["base-uri"]) == ("'none'", "'self'")

    redirect = client.get("/login", follow_redirects=False)  # StaticFiles adds the slash
    assert redirect.status_code in (301, 307, 308)
    _assert_security_headers(redirect)
    for path in ("/assets/entry.js", "/logo.svg"):  # an SVG opened directly may run nothing
        static = client.get(path)
        assert static.status_code == 200
        _assert_security_headers(static)
        assert static.headers["content-security-policy"].startswith("default-src 'none'")
    revalidated = client.get("/login/", headers={"If-None-Match": page.headers["etag"]})
    assert revalidated.status_code == 304
    assert "content-security-policy" not in revalidated.headers  # would replace the cached page's


def test_hsts_and_secure_cookies_only_when_served_over_https(
    auth_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db_session() as session:
        local.set_password(session, "admin@example.test", "correct horse battery staple", actor="test")
    form = {"email": "admin@example.test", "password": "correct horse battery staple"}

    def sign_in(client: TestClient, **headers: str) -> httpx.Response:
        response = client.post("/auth/local", data=form, headers=headers, follow_redirects=False)
        assert response.status_code == 303, response.text
        return response

    def oauth_cookie(client: TestClient, **headers: str) -> str:
        response = client.get("/auth/login/nobody", headers=headers, follow_redirects=False)
        return next(v for v in response.headers.get_list("set-cookie") if v.startswith("flowloom_oauth="))

    plain, tls = TestClient(api), TestClient(api, base_url="https://testserver")
    spoofed = {"X-Forwarded-Proto": "https"}
    for response in (sign_in(plain), sign_in(plain, **spoofed)):  # nobody vouches for that header
        assert "strict-transport-security" not in response.headers
        assert "secure" not in response.headers["set-cookie"].lower()
    assert "secure" not in oauth_cookie(plain, **spoofed).lower()

    over_tls = sign_in(tls)
    assert over_tls.headers["strict-transport-security"] == "max-age=31536000"
    assert (
        "Secure" in over_tls.headers["set-cookie"] and sessions.COOKIE_NAME in over_tls.headers["set-cookie"]
    )
    assert "; secure" in oauth_cookie(tls).lower()

    _settings(monkeypatch, trusted_proxies=["127.0.0.0/8"])  # a TLS proxy on this machine
    proxied = TestClient(api, client=("127.0.0.1", 50123))
    behind_proxy = sign_in(proxied, **spoofed)
    assert behind_proxy.headers["strict-transport-security"] == "max-age=31536000"
    assert "Secure" in behind_proxy.headers["set-cookie"]
    assert "; secure" in oauth_cookie(proxied, **spoofed).lower()
    elsewhere = TestClient(
        api, client=("10.9.8.7", 50123)
    )  # not the proxy: its header still counts for nothing
    assert "strict-transport-security" not in sign_in(elsewhere, **spoofed).headers


# --- Host allow-list -----------------------------------------------------------------------------------


def test_a_foreign_host_is_refused_and_listed_hosts_are_served(
    auth_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TestClient(api)  # connects to "testserver"; the Host header below names something else
    refused = client.get("/api/health", headers={"Host": "rebound.attacker.example"})
    assert refused.status_code == 400
    assert "FLOWLOOM_ALLOWED_HOSTS" in refused.json()["detail"]
    assert "rebound.attacker.example" in refused.json()["detail"]
    _assert_security_headers(refused)
    for loopback in ("localhost:3000", "127.0.0.1", "[::1]:3000", "app.localhost"):
        assert client.get("/api/health", headers={"Host": loopback}).status_code in (200, 503), loopback

    _settings(monkeypatch, host="0.0.0.0", allowed_hosts=["flowloom.example.com", "ops.example.com:8443"])
    assert client.get("/api/health", headers={"Host": "flowloom.example.com"}).status_code in (200, 503)
    assert client.get("/api/health", headers={"Host": "ops.example.com:8443"}).status_code in (200, 503)
    assert client.get("/api/health", headers={"Host": "ops.example.com:9999"}).status_code == 400
    assert client.get("/api/health", headers={"Host": "flowloom.example.com.evil.test"}).status_code == 400


def test_a_foreign_host_cannot_open_the_event_socket(auth_env: None) -> None:
    app = create_api()

    @app.websocket("/_event")
    async def event(websocket: WebSocket) -> None:  # stands in for Reflex's socket
        await websocket.accept()
        await websocket.send_text("connected")
        await websocket.close()

    client = TestClient(app)
    with client.websocket_connect("/_event") as socket:
        assert socket.receive_text() == "connected"
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/_event", headers={"Host": "rebound.attacker.example"}) as socket:
            socket.receive_text()
    assert refused.value.code == 1008


def test_dns_rebinding_against_a_real_loopback_server_is_refused(auth_env: None, tmp_path: Path) -> None:
    """The real server (granian, as Reflex runs it) on 127.0.0.1: a page of evil.example rebound to it
    sends Host: evil.example, and gets nothing but 400."""
    port = find_free_port()
    env = {**os.environ, "FLOWLOOM_SECRET_KEY": TEST_SECRET_KEY}  # auth_env's database and data dir
    granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*granian, "--port", str(port), "--workers", "1", "app.api.main:api"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/health"
        deadline = time.monotonic() + 30
        while True:
            try:
                own = httpx.get(url, trust_env=False, timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "granian did not start"
                time.sleep(0.2)
        assert own.status_code in (200, 503) and set(own.json()) == {"status"}
        rebound = httpx.get(url, headers={"Host": f"evil.example:{port}"}, trust_env=False, timeout=10)
        assert rebound.status_code == 400 and "FLOWLOOM_ALLOWED_HOSTS" in rebound.text
    finally:
        process.terminate()
        process.wait(20)


def test_flowloom_up_refuses_a_wide_bind_without_allowed_hosts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLOOM_")}
    env.update(FLOWLOOM_HOST="0.0.0.0", FLOWLOOM_DATA_DIR=str(tmp_path / "data"), FLOWLOOM_ALLOWED_HOSTS="[]")
    result = subprocess.run(
        [sys.executable, "-m", "engine.ops.cli", "up"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "FLOWLOOM_ALLOWED_HOSTS" in result.stderr and "FLOWLOOM_HOST=0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "postgres").exists()  # refused before starting anything


# --- CORS ------------------------------------------------------------------------------------------------


def test_other_sites_get_no_cors_grant_and_the_app_never_grants_a_wildcard(
    auth_env: None, api_client
) -> None:
    from reflex.app import App
    from reflex_base.config import get_config

    origins = list(get_config().cors_allowed_origins)
    assert origins and "*" not in origins
    app = create_api()
    App._add_cors(app)  # exactly how Reflex wraps the API app with rxconfig's origins
    key = api_client("viewer").api_key
    client = TestClient(app)
    preflight = client.options(
        "/api/workflows",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get(
        "/api/workflows", headers={"Origin": "https://evil.example", "Authorization": f"Bearer {key}"}
    )
    assert "access-control-allow-origin" not in simple.headers
    own = client.get("/api/workflows", headers={"Origin": origins[0], "Authorization": f"Bearer {key}"})
    assert own.headers.get("access-control-allow-origin") == origins[0]  # never "*"


# --- health ------------------------------------------------------------------------------------------------


def test_anonymous_health_says_only_ok_or_degraded_and_admins_get_the_details(
    auth_env: None, api_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, editor, anonymous = api_client("admin"), api_client("editor"), TestClient(api)
    _settings(monkeypatch, redis_url=UNREACHABLE_REDIS)
    response = anonymous.get("/api/health")
    assert response.status_code == 503 and response.json() == {"status": "degraded"}
    assert not re.search(r"redis|127\.0\.0\.1|postgres", response.text, re.I)
    # A signed-in non-admin learns which parts are away (by name: the outage banner says it), no hosts.
    response = editor.get("/api/health")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "unavailable": ["redis", "workers"]}
    assert not re.search(r"127\.0\.0\.1|postgres|:1\b", response.text, re.I)
    detailed = admin.get("/api/health")
    assert detailed.status_code == 503
    body = detailed.json()
    assert body["status"] == "degraded" and set(body["checks"]) == {"database", "redis", "workers"}
    assert "127.0.0.1:1" in body["checks"]["redis"]["detail"]
    assert body["versions"]["flowloom"] and body["versions"]["python"]
