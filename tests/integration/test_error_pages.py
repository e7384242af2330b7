"""The HTTP side of the error pages: a refused or unknown page is served with 403 / 404 (the app's page
then says why), and when the server itself fails a page request gets the app's HTML error page
(503 with the database down, 500 on an unexpected error) while an API request keeps problem+json."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from app.api.main import api
from app.auth import principal as principals
from app.auth import sessions
from app.auth.middleware import AuthMiddleware
from app.error_html import error_html, is_page_path


def _signed_in(make_user, role: str) -> TestClient:
    token, _ = sessions.issue(str(make_user(role).id))
    client = TestClient(api, raise_server_exceptions=False)
    client.cookies.set(sessions.COOKIE_NAME, token)
    return client


def test_refused_and_unknown_pages_pass_to_the_app_with_their_status(make_user) -> None:
    viewer = _signed_in(make_user, "viewer")
    refused = viewer.get("/secrets", follow_redirects=False)
    assert refused.status_code == 403 and "text/plain" not in refused.headers.get("content-type", "")
    unknown = viewer.get("/no/such/page", follow_redirects=False)
    assert unknown.status_code == 404 and "text/plain" not in unknown.headers.get("content-type", "")
    posted = viewer.post("/workflows", follow_redirects=False)
    assert posted.status_code == 405 and posted.headers["content-type"].startswith("application/problem+json")


def _database_down(*_args, **_kwargs):
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_with_the_database_down_a_page_gets_the_html_error_page_and_the_api_problem_json(
    make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _signed_in(make_user, "viewer")
    monkeypatch.setattr(principals, "from_session_token", _database_down)
    page = client.get("/workflows", follow_redirects=False)
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="error-page" data-status="503"' in page.text and "Flowloom cannot serve this page" in page.text
    assert "style-src 'self' 'unsafe-inline'" in page.headers["content-security-policy"]  # its styles apply
    assert page.headers["cache-control"] == "no-store"
    api_answer = client.get("/api/workflows")
    assert api_answer.status_code == 503
    assert api_answer.headers["content-type"].startswith("application/problem+json")


def test_an_unexpected_failure_in_front_of_a_page_is_the_html_500_page(
    make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _signed_in(make_user, "viewer")

    async def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(AuthMiddleware, "_page", broken)
    page = client.get("/runs")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert 'data-status="500"' in page.text and "Something went wrong on our side" in page.text
    assert "a bug" not in page.text  # no internals in the page


def test_the_error_page_escapes_what_it_is_given() -> None:
    html = error_html(503, "<script>alert(1)</script>", '/x"><script>')
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert is_page_path("/workflows") and not is_page_path("/api/runs") and not is_page_path("/v1/models")


def test_with_the_database_on_a_closed_port_a_page_gets_the_503_page_that_retries_by_itself(
    make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.ops.services import find_free_port
    from engine.settings import get_settings

    client = _signed_in(make_user, "viewer")  # signed in while the database answered
    principals.session_cache.clear()
    monkeypatch.setenv(
        "FLOWLOOM_DATABASE_URL", f"postgresql://flowloom@127.0.0.1:{find_free_port()}/flowloom"
    )
    get_settings.cache_clear()
    page = client.get("/workflows", follow_redirects=False)
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "5"
    assert '<meta http-equiv="refresh" content="5">' in page.text  # the browser asks again, no script
    assert "The database is unavailable (connection" in page.text and "Retrying every 5 s" in page.text
    assert "Traceback" not in page.text
    answer = client.get("/api/workflows")
    assert answer.status_code == 503 and answer.headers["content-type"].startswith("application/problem+json")


def _error_of(database_url: str, statement: str) -> Exception:
    from sqlalchemy import text

    from models.db import get_engine

    try:
        with get_engine(database_url).connect() as conn:
            conn.execute(text(statement))
    except Exception as exc:  # noqa: BLE001 - the real error a page's handler would meet
        return exc
    raise AssertionError("the statement did not fail")


def test_an_event_that_meets_the_database_down_shows_the_retrying_banner_not_a_traceback_toast(
    pg_url: str,
) -> None:
    from app.db_outage import BANNER_ID, READY_PATH, backend_exception_handler
    from engine.ops.services import find_free_port

    down = _error_of(f"postgresql://flowloom@127.0.0.1:{find_free_port()}/flowloom", "SELECT 1")
    wrapped = RuntimeError("the page's load failed")
    wrapped.__cause__ = down  # what a handler that re-raises leaves: found through the chain
    for exc in (down, wrapped):
        spec = backend_exception_handler(exc)
        script = str(spec.args[0][1])  # rx.call_script's JavaScript, as a string literal
        assert spec.handler.fn.__qualname__ == "_call_script"
        assert BANNER_ID in script and READY_PATH in script and "location.reload()" in script
        assert "The database is unavailable (connection" in script and "Retrying every 5 s." in script
        assert "Traceback" not in script
    # A statement the database refuses is a bug, not an outage: Reflex's own "An error occurred" toast.
    failed = _error_of(pg_url, "SELECT * FROM no_such_table_here")
    other = backend_exception_handler(failed)
    assert BANNER_ID not in str(other.args) and "An error occurred" in str(other.args)
