"""Egress policy: SSRF refusals, and real requests through EgressClient to local HTTP servers."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import certifi
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from engine.egress import EgressClient, EgressPolicy, check_destination
from engine.errors import PolicyViolation, StepError


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/", "127.0.0.1, a loopback address"),
        ("http://[::1]/", "::1, a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254, a cloud metadata address"),
        ("http://2130706433/", "127.0.0.1, a loopback address"),
        ("http://0x7f000001/", "127.0.0.1, a loopback address"),
        ("http://0x7f.1/", "127.0.0.1, a loopback address"),
        ("http://017700000001/", "127.0.0.1, a loopback address"),
        ("http://localhost", "a loopback address"),
        ("http://10.0.0.1", "10.0.0.1, a private address"),
        ("http://100.64.0.1", "100.64.0.1, a shared (carrier-grade NAT) address"),
        ("http://0.0.0.0:8080/", "0.0.0.0, an unspecified address"),
        ("http://[::ffff:127.0.0.1]/", "which leads to 127.0.0.1, a loopback address (127.0.0.0/8 Loopback)"),
        ("http://[64:ff9b::a00:1]/", "which leads to 10.0.0.1, a private address (10.0.0.0/8 Private-Use)"),
        ("http://[fe80::1]/", "a link-local address"),
        ("http://[fec0::1]/", "a private address"),
        ("http://240.0.0.1/", "a reserved address"),
    ],
)
def test_non_public_destinations_are_refused_naming_the_address_kind(url: str, kind: str) -> None:
    with pytest.raises(PolicyViolation, match="resolves to") as caught:
        check_destination(url, EgressPolicy())
    assert kind in str(caught.value)
    assert f"url {url!r}" in str(caught.value)


def test_refusal_message_tells_how_to_allow_it() -> None:
    with pytest.raises(PolicyViolation) as caught:
        check_destination("http://127.0.0.1/", EgressPolicy())
    assert str(caught.value) == (
        "url 'http://127.0.0.1/' resolves to 127.0.0.1, a loopback address (127.0.0.0/8 Loopback); "
        "allow it in the workflow's egress policy (policy.egress.allowed_hosts)"
    )


def test_numeric_host_forms_are_checked_as_the_address_the_os_connects_to() -> None:
    assert socket.getaddrinfo("2130706433", 80, type=socket.SOCK_STREAM)[0][4][0] == "127.0.0.1"
    policy = EgressPolicy(allowed_hosts=["127.0.0.1"])
    for url in ("http://2130706433/", "http://0x7f000001/", "http://017700000001/", "http://127.1/"):
        assert check_destination(url, policy) == [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/file", "scheme 'ftp' is not allowed; only http and https"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher' is not allowed"),
        ("/relative/path", "scheme '' is not allowed"),
        ("http://user:secret@example.com/", "carries credentials"),
        ("http://127.0.0.1@evil.example/", "carries credentials"),
        ("http:///nohost", "has no host"),
        ("http://metadata.google.internal/computeMetadata/v1/", "a cloud metadata host"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(PolicyViolation, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_destination(url, EgressPolicy())


def test_public_addresses_pass() -> None:
    assert check_destination("https://93.184.216.34/x", EgressPolicy()) == [
        ipaddress.ip_address("93.184.216.34")
    ]
    assert check_destination("http://[2606:4700::1111]/", EgressPolicy()) == [
        ipaddress.ip_address("2606:4700::1111")
    ]


def test_every_resolved_address_must_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def two_answers(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        answers = ["93.184.216.34", "10.1.2.3"]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers]

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    with pytest.raises(PolicyViolation, match="resolves to 10.1.2.3, a private address"):
        check_destination("http://mixed.example/", EgressPolicy())


def test_unresolvable_host_is_a_retryable_step_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_answer(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    with pytest.raises(StepError, match="cannot resolve host") as caught:
        check_destination("http://no-such-host.invalid/", EgressPolicy())
    assert caught.value.retryable is True


def test_allow_rules_let_non_global_destinations_through() -> None:
    ten = [ipaddress.ip_address("10.0.0.1")]
    assert check_destination("http://10.0.0.1/", EgressPolicy(allow_private=True)) == ten
    assert check_destination("http://10.0.0.1/", EgressPolicy(allowed_hosts=["10.0.0.0/8"])) == ten
    assert check_destination("http://10.0.0.1:8080/", EgressPolicy(allowed_hosts=["10.0.0.1:8080"])) == ten
    with pytest.raises(PolicyViolation):
        check_destination("http://10.0.0.1:9090/", EgressPolicy(allowed_hosts=["10.0.0.1:8080"]))
    assert check_destination("http://[::1]:81/", EgressPolicy(allowed_hosts=["[::1]:81"])) == [
        ipaddress.ip_address("::1")
    ]
    assert check_destination("http://LocalHost./", EgressPolicy(allowed_hosts=["localhost"]))


def test_denied_hosts_win_over_allow_rules() -> None:
    policy = EgressPolicy(allow_private=True, allowed_hosts=["10.0.0.0/8"], denied_hosts=["10.0.0.5"])
    assert check_destination("http://10.0.0.4/", policy)
    with pytest.raises(PolicyViolation, match="denied_hosts"):
        check_destination("http://10.0.0.5/", policy)
    with pytest.raises(PolicyViolation, match="denied_hosts"):
        check_destination("http://93.184.216.34/", EgressPolicy(denied_hosts=["93.184.216.0/24"]))


def test_metadata_addresses_need_an_exact_entry() -> None:
    for policy in (EgressPolicy(allow_private=True), EgressPolicy(allowed_hosts=["169.254.0.0/16"])):
        with pytest.raises(PolicyViolation, match="cloud metadata"):
            check_destination("http://169.254.169.254/", policy)
    with pytest.raises(PolicyViolation, match="cloud metadata"):
        check_destination("http://[fd00:ec2::254]/", EgressPolicy(allow_private=True))
    exact = EgressPolicy(allowed_hosts=["169.254.169.254"])
    assert check_destination("http://169.254.169.254/", exact) == [ipaddress.ip_address("169.254.169.254")]


# --- the IANA special-purpose registries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "named"),
    [
        ("0.1.2.3", '0.0.0.0/8 "This network"'),
        ("10.20.30.40", "10.0.0.0/8 Private-Use"),
        ("100.64.0.1", "100.64.0.0/10 Shared Address Space"),
        ("169.254.1.1", "169.254.0.0/16 Link Local"),
        ("172.16.5.4", "172.16.0.0/12 Private-Use"),
        ("192.0.0.1", "192.0.0.0/29 IPv4 Service Continuity Prefix"),
        ("192.0.0.8", "192.0.0.8/32 IPv4 dummy address"),
        ("192.0.0.100", "192.0.0.0/24 IETF Protocol Assignments"),
        ("192.0.0.170", "192.0.0.170/32 NAT64/DNS64 Discovery"),
        ("192.0.2.10", "192.0.2.0/24 Documentation (TEST-NET-1)"),
        ("192.88.99.1", "192.88.99.0/24 Deprecated (6to4 Relay Anycast)"),
        ("192.168.1.1", "192.168.0.0/16 Private-Use"),
        ("198.18.0.1", "198.18.0.0/15 Benchmarking"),
        ("198.19.255.254", "198.18.0.0/15 Benchmarking"),
        ("198.51.100.7", "198.51.100.0/24 Documentation (TEST-NET-2)"),
        ("203.0.113.9", "203.0.113.0/24 Documentation (TEST-NET-3)"),
        ("224.0.0.1", "224.0.0.0/4 Multicast"),
        ("240.0.0.1", "240.0.0.0/4 Reserved"),
        ("255.255.255.255", "255.255.255.255/32 Limited Broadcast"),
        ("[::]", "::/128 Unspecified Address"),
        ("[::1]", "::1/128 Loopback Address"),
        ("[64:ff9b:1::a]", "64:ff9b:1::/48 IPv4-IPv6 Translat. (local-use)"),
        ("[100::1]", "100::/64 Discard-Only Address Block"),
        ("[100:0:0:1::1]", "100:0:0:1::/64 Dummy IPv6 Prefix"),
        ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "2001::/32 TEREDO"),
        ("[2001:2::1]", "2001:2::/48 Benchmarking"),
        ("[2001:10::1]", "2001:10::/28 Deprecated (previously ORCHID)"),
        ("[2001:100::1]", "2001::/23 IETF Protocol Assignments"),
        ("[2001:db8::1]", "2001:db8::/32 Documentation"),
        ("[3fff::1]", "3fff::/20 Documentation"),
        ("[5f00::1]", "5f00::/16 Segment Routing (SRv6) SIDs"),
        ("[fd12:3456::1]", "fc00::/7 Unique-Local"),
        ("[fe80::1]", "fe80::/10 Link-Local Unicast"),
        ("[ff02::1]", "ff00::/8 Multicast"),
        ("[::7f00:1]", "outside 2000::/3"),  # IPv4-compatible, deprecated
        ("[4000::1]", "outside 2000::/3"),
        ("[::ffff:192.0.2.1]", "which leads to 192.0.2.1, a documentation address"),
        ("[64:ff9b::c633:6401]", "which leads to 198.51.100.1, a documentation address"),
        ("[2002:a00:1::1]", "which leads to 10.0.0.1, a private address"),  # 6to4
    ],
)
def test_every_range_the_iana_registries_call_not_globally_reachable_is_refused_by_name(
    host: str, named: str
) -> None:
    url = f"http://{host}/"
    with pytest.raises(PolicyViolation, match="resolves to") as caught:
        check_destination(url, EgressPolicy())
    assert named in str(caught.value)
    assert str(caught.value).endswith(_FIX_TEXT)


_FIX_TEXT = "allow it in the workflow's egress policy (policy.egress.allowed_hosts)"


@pytest.mark.parametrize(
    "host",
    [
        "192.0.0.9",  # Port Control Protocol Anycast
        "192.0.0.10",  # TURN anycast
        "192.31.196.1",  # AS112-v4
        "192.52.193.1",  # AMT
        "192.175.48.1",  # AS112 direct delegation
        "[2001:1::1]",
        "[2001:1::2]",
        "[2001:1::3]",
        "[2001:3::1]",  # AMT
        "[2001:4:112::1]",  # AS112-v6
        "[2001:20::1]",  # ORCHIDv2
        "[2001:30::1]",  # DETs
        "[2620:4f:8000::1]",
        "[64:ff9b::5db8:d822]",  # NAT64 of 93.184.216.34
        "[2002:5db8:d822::1]",  # 6to4 of 93.184.216.34
        "[::ffff:93.184.216.34]",
    ],
)
def test_globally_reachable_exceptions_inside_refused_blocks_pass(host: str) -> None:
    assert check_destination(f"http://{host}/", EgressPolicy())


def test_azure_wireserver_is_refused_like_a_metadata_endpoint() -> None:
    for policy in (
        EgressPolicy(),
        EgressPolicy(allow_private=True),
        EgressPolicy(allowed_hosts=["168.0.0.0/8"]),
    ):
        with pytest.raises(PolicyViolation, match=r"a cloud metadata address \(Azure WireServer\)"):
            check_destination("http://168.63.129.16/machine?comp=goalstate", policy)
    exact = EgressPolicy(allowed_hosts=["168.63.129.16"])
    assert check_destination("http://168.63.129.16/", exact) == [ipaddress.ip_address("168.63.129.16")]


def test_policy_rejects_unknown_fields_and_bad_entries() -> None:
    with pytest.raises(ValidationError):
        EgressPolicy(allow_everything=True)  # type: ignore[call-arg]
    for entry in ("bad host", "*", "10.0.0.0/33", "example.com:99999", "[::1]x"):
        with pytest.raises(ValidationError):
            EgressPolicy(allowed_hosts=[entry])
    policy = EgressPolicy(allowed_hosts=["api.example.com", "*.example.org:443", "[::1]:8080", "10.0.0.0/8"])
    assert EgressPolicy.model_validate(policy.model_dump()) == policy


# --- real requests against local servers -------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
        if path == "/ok":
            self._reply(200, b"ok")
        elif path == "/host":
            self._reply(200, self.headers["Host"].encode())
        elif path == "/method":
            self._reply(200, self.command.encode())
        elif path == "/auth":
            self._reply(200, (self.headers.get("Authorization") or "none").encode())
        elif path == "/headers":
            self._reply(200, json.dumps({k.lower(): v for k, v in self.headers.items()}).encode())
        elif path == "/redirect":
            headers = {"Location": query["to"][0]}
            if "cookie" in query:
                headers["Set-Cookie"] = f"sid={query['cookie'][0]}; Path=/"
            self._reply(int(query.get("status", ["302"])[0]), headers=headers)
        elif path.startswith("/loop/"):
            self._reply(302, headers={"Location": f"/loop/{int(path.rsplit('/', 1)[1]) + 1}"})
        elif path == "/big":
            self._reply(200, b"x" * 5000)
        elif path == "/big-undeclared":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 1000)
        elif path == "/slow":
            time.sleep(4)
            self._reply(200, b"late")
        else:
            self._reply(404, b"no")

    do_POST = do_GET


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    started = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.seen = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield started[0], started[1]
    for server in started:
        server.shutdown()
        server.server_close()


def _port(server: ThreadingHTTPServer) -> int:
    return server.server_address[1]


def _fetch(policy: EgressPolicy, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        async with EgressClient(policy) as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(run())


def test_allowed_local_server_answers(servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer]) -> None:
    a, _ = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"])
    response = _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/ok", params={"q": "1"})
    assert (response.status_code, response.text) == (200, "ok")
    assert a.seen[-1][1] == "/ok?q=1"  # type: ignore[attr-defined]
    with pytest.raises(PolicyViolation, match="a loopback address"):
        _fetch(EgressPolicy(), "GET", f"http://127.0.0.1:{_port(a)}/ok")


def test_request_goes_to_the_checked_address_with_the_original_host_header(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = servers
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "api.flowloom.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)  # first answer passes the check; any later answer would not
        address = "127.0.0.1" if len(lookups) == 1 else "10.255.255.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"], timeout_s=5)
    response = _fetch(
        policy, "GET", f"http://api.flowloom.test:{_port(a)}/host", headers={"Host": "evil.test"}
    )
    assert response.text == f"api.flowloom.test:{_port(a)}"
    assert lookups == ["api.flowloom.test"]
    assert response.url == httpx.URL(f"http://api.flowloom.test:{_port(a)}/host")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[::ffff:10.0.0.1]/", "which leads to 10.0.0.1, a private address"),
    ],
)
def test_redirects_to_forbidden_targets_are_refused(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer], target: str, reason: str
) -> None:
    a, _ = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"])
    with pytest.raises(PolicyViolation, match="^redirect 1 ") as caught:
        _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/redirect?to={target}")
    assert reason in str(caught.value)


def test_redirect_to_a_server_not_allowed_is_refused_at_that_hop(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    a, b = servers
    target = f"http://127.0.0.1:{_port(b)}/ok"
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"])
    before = len(b.seen)  # type: ignore[attr-defined]
    with pytest.raises(PolicyViolation) as caught:
        _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/redirect?to={target}")
    message = str(caught.value)
    assert message.startswith("redirect 1 (")
    assert f"-> {target}) refused: url '{target}' resolves to 127.0.0.1, a loopback address" in message
    assert len(b.seen) == before  # type: ignore[attr-defined]


def test_redirects_are_followed_and_rechecked(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    a, b = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}", f"127.0.0.1:{_port(b)}"])
    response = _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/redirect?to=/ok")
    assert (response.text, len(response.history)) == ("ok", 1)
    response = _fetch(
        policy, "POST", f"http://127.0.0.1:{_port(a)}/redirect?status=303&to=/method", json={"a": 1}
    )
    assert response.text == "GET"
    response = _fetch(
        policy, "POST", f"http://127.0.0.1:{_port(a)}/redirect?status=307&to=/method", json={"a": 1}
    )
    assert response.text == "POST"


def test_authorization_is_dropped_on_cross_origin_redirects(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    a, b = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}", f"127.0.0.1:{_port(b)}"])
    auth = {"Authorization": "Bearer secret"}
    same = _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/redirect?to=/auth", headers=auth)
    assert same.text == "Bearer secret"
    other = f"http://127.0.0.1:{_port(b)}/auth"
    cross = _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/redirect?to={other}", headers=auth)
    assert cross.text == "none"


_CREDENTIALS = {
    "Authorization": "Bearer secret-token",
    "X-Api-Key": "secret-key",
    "Cookie": "sid=secret-session",
    "Proxy-Authorization": "Basic c2VjcmV0",
    "Private-Token": "secret-custom",  # a secret in a header of the workflow's own choosing
}


def test_credentials_stay_on_same_origin_redirects(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    a, _ = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"])
    seen = _fetch(
        policy, "GET", f"http://127.0.0.1:{_port(a)}/redirect?to=/headers", headers=_CREDENTIALS
    ).json()
    assert {name: seen.get(name.lower()) for name in _CREDENTIALS} == _CREDENTIALS


@pytest.mark.parametrize("other", ["port", "host"])
def test_a_redirect_to_another_origin_carries_no_credentials(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer], other: str
) -> None:
    a, b = servers
    target = (
        f"http://127.0.0.1:{_port(b)}/headers" if other == "port" else f"http://localhost:{_port(a)}/headers"
    )
    policy = EgressPolicy(
        allowed_hosts=[f"127.0.0.1:{_port(a)}", f"127.0.0.1:{_port(b)}", f"localhost:{_port(a)}"]
    )
    headers = {**_CREDENTIALS, "Accept": "application/json", "User-Agent": "flowloom-test"}
    seen = _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/redirect?to={target}", headers=headers).json()
    assert not {name.lower() for name in _CREDENTIALS} & set(seen)
    assert (seen["accept"], seen["user-agent"]) == ("application/json", "flowloom-test")


def test_the_client_keeps_no_cookies_between_hops(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    a, b = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}", f"127.0.0.1:{_port(b)}"])
    for target in (
        "/headers",
        f"http://127.0.0.1:{_port(b)}/headers",
    ):  # same port, then B's: cookies ignore ports
        url = f"http://127.0.0.1:{_port(a)}/redirect?cookie=planted&to={target}"
        assert "cookie" not in _fetch(policy, "GET", url).json()


def test_redirect_chains_longer_than_max_redirects_are_refused(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    a, _ = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"], max_redirects=3)
    before = len(a.seen)  # type: ignore[attr-defined]
    with pytest.raises(PolicyViolation, match="redirected more than 3 times"):
        _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/loop/0")
    assert len(a.seen) - before == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/big", "/big-undeclared"])
def test_oversized_bodies_are_refused(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer], path: str
) -> None:
    a, _ = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"], max_response_bytes=1000)
    with pytest.raises(PolicyViolation, match="max_response_bytes"):
        _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}{path}")
    roomy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"], max_response_bytes=100_000)
    assert len(_fetch(roomy, "GET", f"http://127.0.0.1:{_port(a)}{path}").content) in (5000, 50_000)


def test_slow_responses_time_out_as_retryable_step_errors(
    servers: tuple[ThreadingHTTPServer, ThreadingHTTPServer],
) -> None:
    a, _ = servers
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(a)}"])
    started = time.monotonic()
    with pytest.raises(StepError) as caught:
        _fetch(policy, "GET", f"http://127.0.0.1:{_port(a)}/slow", timeout=0.3)
    assert caught.value.retryable is True
    assert time.monotonic() - started < 3  # the server answers only after 4s


def _tls_files(tmp: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for secure.flowloom.test (no IP in it)."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key: Any, signer: Any, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("secure.flowloom.test")]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("Flowloom test CA", None, ca_key, ca_key, ca=True)
    server_cert = build("secure.flowloom.test", ca_cert.subject, server_key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(server_cert.public_bytes(pem))
    paths[2].write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def test_https_goes_to_the_checked_address_and_verifies_the_certificate_for_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = _tls_files(tmp_path)
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.seen = []  # type: ignore[attr-defined]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real_getaddrinfo = socket.getaddrinfo

    def test_names(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).endswith(".flowloom.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", test_names)
    monkeypatch.setattr(certifi, "where", lambda: str(ca))  # httpx's default trust store: our test CA
    policy = EgressPolicy(allowed_hosts=[f"127.0.0.1:{_port(server)}"], timeout_s=5)
    try:
        response = _fetch(policy, "GET", f"https://secure.flowloom.test:{_port(server)}/host")
        assert response.text == f"secure.flowloom.test:{_port(server)}"
        assert server_names == ["secure.flowloom.test"]
        with pytest.raises(StepError, match="certificate verify failed|Hostname mismatch"):
            _fetch(policy, "GET", f"https://other.flowloom.test:{_port(server)}/host")
    finally:
        server.shutdown()
        server.server_close()
