"""Sessions, keys and local services, attacked on real PostgreSQL, Redis and a real OpenID provider.

Sign-out holds in every process even with Redis gone; an OIDC state completes one sign-in only;
failed passwords and API keys earn a back-off kept in PostgreSQL; the embedded PostgreSQL and Redis
want their generated passwords; a world-readable key file stops the start; OpenVINO sends no
telemetry; a new API key never enters Reflex state; tool.sql's read-only is the database's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
import reflex as rx
from fastapi.testclient import TestClient
from reflex_base import constants
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from app.api.main import api
from app.auth import api_keys, local, oidc, sessions
from app.auth.principal import from_session_token, session_cache
from app.db import db_session
from engine.contract import StepContext, get_node_type
from engine.errors import ConfigError, PolicyViolation
from engine.ops.embedded_postgres import EmbeddedPostgres
from engine.ops.embedded_redis import EmbeddedRedis
from engine.ops.services import find_free_port
from engine.settings import get_settings
from models.auth import ApiKey, AuthThrottle, RevokedSession, UsedOidcState
from models.db import get_engine
from tests.conftest import REPO_ROOT
from tests.oidc import provider as oidc_provider

PASSWORD = "correct horse battery staple"
CALLBACK = "http://testserver/auth/callback/test"


def closed_port_url(scheme: str) -> str:
    """A loopback URL where nothing listens."""
    return f"{scheme}://127.0.0.1:{find_free_port()}/0"


@pytest.fixture
def local_admin(auth_env):
    with db_session() as session:
        return local.set_password(session, "admin@example.test", PASSWORD, actor="test")


def sign_in(client: TestClient, email: str = "admin@example.test", password: str = PASSWORD):
    return client.post("/auth/local", data={"email": email, "password": password}, follow_redirects=False)


def from_another_process(token: str) -> bool:
    """Whether a fresh Python process (its own memory, no Redis) accepts the session cookie."""
    script = (
        "import sys\n"
        "from app.auth.principal import from_session_token\n"
        "print('accepted' if from_session_token(sys.argv[1]) else 'refused')\n"
    )
    env = {**os.environ, "FLOWLOOM_REDIS_URL": closed_port_url("redis")}
    result = subprocess.run(
        [sys.executable, "-c", script, token],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "accepted"


# ---------------------------------------------------------------------------------------------
# Sign-out revocation


def test_signed_out_cookie_is_refused_by_another_process_while_redis_is_down(
    local_admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", closed_port_url("redis"))
    get_settings.cache_clear()
    client = TestClient(api)
    token = sign_in(client).cookies[sessions.COOKIE_NAME]
    assert from_another_process(token)  # the check below is not refusing everything

    assert client.post("/auth/logout", follow_redirects=False).status_code == 303
    assert not from_another_process(token)
    with db_session() as session:
        assert len(session.exec(select(RevokedSession)).all()) == 1


def test_sign_out_recorded_by_another_process_applies_here_at_once(local_admin) -> None:
    token = sign_in(TestClient(api)).cookies[sessions.COOKIE_NAME]
    signed_in = from_session_token(token)
    assert signed_in is not None and signed_in.session is not None
    # What another web process's sign-out writes; this process has the user cached.
    with get_engine(get_settings().database_url).begin() as conn:
        conn.execute(
            text("INSERT INTO revoked_sessions VALUES (:sid, now(), now() + interval '1 hour')"),
            {"sid": signed_in.session.session_id},
        )
    assert from_session_token(token) is None
    client = TestClient(api)
    client.cookies.set(sessions.COOKIE_NAME, token)
    assert client.get("/api/me").status_code == 401


def test_session_check_fails_closed_when_the_database_cannot_be_asked(
    local_admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sign_in(TestClient(api)).cookies[sessions.COOKIE_NAME]
    session_cache.clear()
    monkeypatch.setenv(
        "FLOWLOOM_DATABASE_URL", f"postgresql://postgres:x@127.0.0.1:{find_free_port()}/flowloom"
    )
    get_settings.cache_clear()
    with pytest.raises(OperationalError):
        sessions.decode(token)  # never "not revoked" by default
    client = TestClient(api)
    client.cookies.set(sessions.COOKIE_NAME, token)
    assert client.get("/api/me").status_code == 503


# ---------------------------------------------------------------------------------------------
# OIDC state


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[oidc_provider.OIDCProviderProcess]:
    running = oidc_provider.start([CALLBACK], tmp_path_factory.mktemp("oidc"))
    yield running
    running.stop()


@pytest.fixture
def sso(auth_env, provider, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLOWLOOM_OIDC_PROVIDERS", json.dumps([provider.settings("test")]))
    get_settings.cache_clear()
    return provider


def test_replayed_oidc_callback_with_a_used_state_is_refused_before_the_provider(sso) -> None:
    client = TestClient(api)
    authorize = client.get("/auth/login/test", follow_redirects=False).headers["location"]
    callback = oidc_provider.login_at_provider(authorize, "carol", until=CALLBACK)
    saved_cookies = httpx.Cookies(client.cookies)  # the OAuth cookie as it was before the callback
    assert client.get(callback, follow_redirects=False).headers["location"] == "/"

    replay = TestClient(api)
    replay.cookies.update(saved_cookies)
    refused = replay.get(callback, follow_redirects=False)
    # Not "provider_refused": the reused state is caught here, before the code is sent anywhere.
    assert refused.status_code == 303 and refused.headers["location"] == "/login?error=state"
    assert sessions.COOKIE_NAME not in refused.headers.get("set-cookie", "")
    assert replay.get("/api/me").status_code == 401
    state = oidc_provider.query_param(callback, "state")
    with db_session() as session:
        used = session.exec(select(UsedOidcState.state_hash)).all()
    assert used == [hashlib.sha256(state.encode()).hexdigest()]


def test_an_oidc_state_can_be_claimed_once(auth_env) -> None:
    state = uuid.uuid4().hex
    assert oidc.claim_state(state) is True
    assert oidc.claim_state(state) is False


# ---------------------------------------------------------------------------------------------
# Throttling of failed passwords and API keys


def test_wrong_passwords_earn_a_429_with_retry_after_kept_in_the_database(local_admin) -> None:
    attacker = TestClient(api, client=("198.51.100.7", 40000))
    threshold = get_settings().auth_failures_before_backoff
    for _ in range(threshold):
        bad = sign_in(attacker, password="not the password")
        assert bad.status_code == 303 and bad.headers["location"].endswith("error=bad_credentials")
    # Even the right password is not checked now.
    blocked = sign_in(attacker)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert (
        "too many failed sign-in attempts" in blocked.text
        and sessions.COOKIE_NAME not in blocked.headers.get("set-cookie", "")
    )
    api_keys.rate_limiter.reset()  # no in-process memory is what refuses
    session_cache.clear()
    # The account is blocked from another address too, and the address for another account.
    assert sign_in(TestClient(api, client=("203.0.113.9", 40000))).status_code == 429
    assert sign_in(attacker, email="someone@example.test").status_code == 429
    with db_session() as session:
        rows = session.exec(select(AuthThrottle)).all()
    assert len(rows) == 2 and all(r.failures == threshold and r.blocked_until for r in rows)
    # An unrelated client with an unrelated account still signs in.
    with db_session() as session:
        local.set_password(session, "other@example.test", PASSWORD, actor="test")
    assert sign_in(TestClient(api, client=("192.0.2.1", 1)), email="other@example.test").status_code == 303


def test_bad_api_keys_with_one_prefix_block_that_prefix_from_any_client(auth_env, api_client) -> None:
    client = api_client("viewer")
    prefix = client.api_key.split("_")[1]
    threshold = get_settings().auth_failures_before_backoff
    for i in range(threshold):
        guesser = TestClient(api, client=(f"198.51.100.{i + 1}", 1000))  # a new address each time
        guess = guesser.get("/api/me", headers={"Authorization": f"Bearer flk_{prefix}_{uuid.uuid4().hex}"})
        assert guess.status_code == 401
    owner = TestClient(
        api, client=("192.0.2.50", 1000), headers={"Authorization": f"Bearer {client.api_key}"}
    )
    blocked = owner.get("/api/me")
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert "too many failed API key attempts" in blocked.json()["detail"]


def test_bad_api_keys_from_one_client_block_that_client(auth_env, api_client) -> None:
    good_key = api_client("viewer").api_key
    attacker = TestClient(api, client=("198.51.100.99", 1000))
    for _ in range(get_settings().auth_failures_before_backoff):
        bad = attacker.get("/api/me", headers={"Authorization": f"Bearer flk_{uuid.uuid4().hex[:8]}_nope"})
        assert bad.status_code == 401
    refused = attacker.get("/api/me", headers={"Authorization": f"Bearer {good_key}"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    other = TestClient(api, client=("192.0.2.60", 1000), headers={"Authorization": f"Bearer {good_key}"})
    assert other.get("/api/me").status_code == 200


def test_default_api_key_limit_lets_a_client_poll_a_run_every_250_ms(local_admin) -> None:
    admin = TestClient(api)
    sign_in(admin)
    created = admin.post("/api/keys", json={"name": "follower"}).json()
    with db_session() as session:
        limit = session.get(ApiKey, uuid.UUID(created["id"])).rate_limit_per_min
    assert limit >= 4 * 60 * 2  # twice what a 250 ms poll needs
    follower = TestClient(api, headers={"Authorization": f"Bearer {created['key']}"})
    codes = {follower.get("/api/me").status_code for _ in range(130)}  # more than the old 120 a minute
    assert codes == {200}


# ---------------------------------------------------------------------------------------------
# Embedded services and key files


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_refuses_without_password(port: int) -> None:
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=10)


def test_embedded_postgres_wants_its_generated_password_and_listens_on_loopback_only(
    service_dir: Callable[[str], Path],
) -> None:
    server = EmbeddedPostgres(service_dir("pg-auth") / "postgres", find_free_port())
    server.start()
    try:
        assert mode_of(server.password_file) == 0o600
        password = server.password_file.read_text().strip()
        assert len(password) >= 32 and f":{password}@" in server.url
        assert_refuses_without_password(server.port)
        with psycopg.connect(server.url, connect_timeout=10) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
            methods = {row[0] for row in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
        assert methods == {"scram-sha-256"}
    finally:
        server.stop()


def test_embedded_postgres_made_with_trust_auth_is_moved_to_a_password(
    service_dir: Callable[[str], Path],
) -> None:
    server = EmbeddedPostgres(service_dir("pg-trust") / "postgres", find_free_port())
    server.start()
    server.stop()
    # What a data directory from before passwords looked like: trust rules and no password file.
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
    server.password_file.unlink()

    server.start()
    try:
        assert mode_of(server.password_file) == 0o600
        assert_refuses_without_password(server.port)
        with psycopg.connect(server.url, connect_timeout=10) as conn:
            methods = {row[0] for row in conn.execute("SELECT auth_method FROM pg_hba_file_rules")}
        assert methods == {"scram-sha-256"}
    finally:
        server.stop()


def test_embedded_redis_wants_its_generated_password_kept_off_the_command_line(
    service_dir: Callable[[str], Path],
) -> None:
    server = EmbeddedRedis(service_dir("redis-auth"), find_free_port())
    server.start()
    try:
        password = server.password_file.read_text().strip()
        assert mode_of(server.password_file) == 0o600 and len(password) >= 32
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5).ping()
        assert redis.Redis.from_url(server.url, socket_timeout=5).ping()
        assert password not in Path(f"/proc/{server.pid}/cmdline").read_text()
    finally:
        server.stop()


def run_cli(command: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FLOWLOOM_DATA_DIR": str(data_dir),
        # Unreachable services: a start that ignored the key file would stop at them instead.
        "FLOWLOOM_DATABASE_URL": f"postgresql://postgres:x@127.0.0.1:{find_free_port()}/flowloom",
        "FLOWLOOM_REDIS_URL": closed_port_url("redis"),
        "FLOWLOOM_PORT": str(find_free_port()),
    }
    return subprocess.run(
        [sys.executable, "-m", "engine.ops.cli", command],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("key_file", ["secrets.key", "secret_key"])
def test_start_is_refused_while_a_key_file_is_readable_by_others(tmp_path: Path, key_file: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / key_file
    path.write_text("k" * 48)
    path.chmod(0o644)
    for command in ("worker", "up"):
        result = run_cli(command, data_dir)
        assert result.returncode == 3, result.stderr
        assert f"chmod 600 {path}" in result.stderr and "Traceback" not in result.stderr


def test_session_key_file_readable_by_others_is_refused(auth_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLOOM_SECRET_KEY")
    get_settings.cache_clear()
    sessions._secret_cache.clear()
    path = get_settings().resolved_data_dir / sessions.SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s" * 64)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match=f"chmod 600 {path}"):
        sessions.secret_key()
    sessions._secret_cache.clear()


# ---------------------------------------------------------------------------------------------
# OpenVINO telemetry


def test_openvino_telemetry_is_declined_unless_the_setting_opts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openvino_telemetry import Telemetry

    import nodes.openvino.openvino_runtime  # noqa: F401 - what a worker imports before any OpenVINO tool

    monkeypatch.setenv("HOME", str(tmp_path))  # no consent file: tools without a dialog take that as yes
    monkeypatch.delenv("FLOWLOOM_OPENVINO_TELEMETRY", raising=False)
    get_settings.cache_clear()
    args = {"app_name": "flowloom-test", "app_version": "0", "tid": "G-TEST", "backend": "ga4"}
    telemetry = Telemetry(**args, enable_opt_in_dialog=False)
    telemetry.init(**args, enable_opt_in_dialog=False)
    assert telemetry.consent is False

    monkeypatch.setenv("FLOWLOOM_OPENVINO_TELEMETRY", "true")
    get_settings.cache_clear()
    try:
        telemetry.init(**args, enable_opt_in_dialog=False)
        assert telemetry.consent is True  # the switch is the setting, nothing else
    finally:
        telemetry.consent = False
        get_settings.cache_clear()


# ---------------------------------------------------------------------------------------------
# The one-time API key and Reflex state


def test_new_api_key_reaches_the_browser_once_and_never_reflex_state(make_user) -> None:
    import app.app  # noqa: F401 - registers the pages' states
    from app.pages.settings_state import CREATED_KEY_ID, SettingsState

    user = make_user("editor")
    token, _ = sessions.issue(str(user.id))
    root = rx.State(_reflex_internal_init=True)
    root._update_router_vars({constants.RouteVar.HEADERS: {"cookie": f"{sessions.COOKIE_NAME}={token}"}}, {})
    settings = root.substates[SettingsState.get_name()]
    settings.new_key_name = "ci"

    shown = SettingsState.create_key.fn(settings)
    values = {name._js_expr: value._var_value for name, value in shown.args}
    key = values["value"]
    assert values["ref"] == f"ref_{CREATED_KEY_ID.replace('-', '_')}" and key.startswith("flk_")
    assert TestClient(api, headers={"Authorization": f"Bearer {key}"}).get("/api/me").status_code == 200
    # What Reflex's state manager would store (Redis in production) holds no trace of it.
    for state in (root, *root.substates.values()):
        assert key.encode() not in state._serialize(), state.get_name()
    assert settings.key_shown is True

    hidden = SettingsState.dismiss_key.fn(settings)
    assert {name._js_expr: value._var_value for name, value in hidden.args}["value"] == ""
    assert settings.key_shown is False


# ---------------------------------------------------------------------------------------------
# tool.sql


@pytest.fixture
def sql_table(pg_url: str) -> Iterator[str]:
    name = f"sessions_sql_{uuid.uuid4().hex[:8]}"
    with get_engine(pg_url).begin() as conn:
        conn.execute(text(f"CREATE TABLE {name} (id int PRIMARY KEY)"))
        conn.execute(text(f"INSERT INTO {name} VALUES (1), (2)"))
    yield name
    with get_engine(pg_url).begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def run_sql(pg_url: str, query: str, allow_writes: bool = False) -> dict:
    node = get_node_type("tool.sql")
    cfg = node.config_model.model_validate(
        {"connection": "main", "query": query, "allow_writes": allow_writes}
    )
    ctx = StepContext(
        run_id="r",
        step_id="s",
        node_id="query",
        node_type="tool.sql",
        sql_connection={"main": pg_url}.__getitem__,
    )
    return asyncio.run(node.run(ctx, cfg, {}))


def count(pg_url: str, table: str) -> int:
    with get_engine(pg_url).connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_sql_read_only_is_refused_by_postgresql_itself(pg_url: str, sql_table: str) -> None:
    with pytest.raises(PolicyViolation, match="cannot execute INSERT in a read-only transaction"):
        run_sql(pg_url, f"INSERT INTO {sql_table} VALUES (3)")
    # A write behind read-looking text: a data-modifying CTE.
    with pytest.raises(PolicyViolation, match="cannot execute .* in a read-only transaction"):
        run_sql(pg_url, f"WITH gone AS (DELETE FROM {sql_table} RETURNING id) SELECT count(*) FROM gone")
    assert count(pg_url, sql_table) == 2
    assert run_sql(pg_url, f"SELECT count(*) AS n FROM {sql_table}")["out"]["rows"] == [{"n": 2}]


@pytest.mark.parametrize("allow_writes", [False, True])
def test_sql_refuses_several_statements_in_one_query(pg_url: str, sql_table: str, allow_writes: bool) -> None:
    with pytest.raises(PolicyViolation, match="several statements"):
        run_sql(pg_url, f"SELECT 1; DELETE FROM {sql_table}", allow_writes=allow_writes)
    assert count(pg_url, sql_table) == 2
