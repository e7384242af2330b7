"""Changes that cannot be taken back ask first, in Chromium: revoking an API key, changing a user's
role, deactivating a user (Settings). Cancel leaves everything as it was; confirming applies it.
And the inbox's "Decided" table has an empty state instead of a bare header."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import select

from app.auth import api_keys
from app.db import db_session
from engine.settings import get_settings
from models.auth import ApiKey, User

TIMEOUT_MS = 20_000


@pytest.fixture
def app_db(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    get_settings.cache_clear()


def _user(email: str) -> User:
    with db_session() as session:
        user = session.exec(select(User).where(User.email == email)).one()
        session.expunge(user)
        return user


def _make_user(role: str) -> str:
    email = f"target-{uuid.uuid4().hex[:6]}@example.test"
    with db_session() as session:
        session.add(User(issuer="https://idp.example.test", subject=email, email=email, name=email, role=role,
                         email_verified=True))  # fmt: skip
    return email


def test_revoking_a_key_asks_first_and_cancel_keeps_it(
    page: Page, app_server: str, login_as: Callable[..., str], app_db: None
) -> None:
    email = login_as(page, "viewer")
    with db_session() as session:
        owner = session.exec(select(User).where(User.email == email)).one()
        row, _ = api_keys.create(session, owner, name="deploys", role="viewer")
        key_id = row.id
    page.goto(f"{app_server}/settings")
    key_row = page.get_by_test_id("key-row")
    expect(key_row).to_have_count(1, timeout=TIMEOUT_MS)

    key_row.get_by_role("button", name="Revoke key deploys").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Revoke the key “deploys”")
    page.locator("#confirm-cancel").click()
    expect(dialog).to_have_count(0)
    page.reload()
    expect(key_row).not_to_contain_text("revoked", timeout=TIMEOUT_MS)
    with db_session() as session:
        assert session.get(ApiKey, key_id).revoked_at is None

    key_row.get_by_role("button", name="Revoke key deploys").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # closing the dialog any way is a cancel
    expect(dialog).to_have_count(0)
    key_row.get_by_role("button", name="Revoke key deploys").click()
    page.locator("#confirm-action").click()
    expect(key_row).to_contain_text("revoked", timeout=TIMEOUT_MS)
    with db_session() as session:
        assert session.get(ApiKey, key_id).revoked_at is not None


def test_changing_a_role_and_deactivating_a_user_ask_first(
    page: Page, app_server: str, login_as: Callable[..., str], app_db: None
) -> None:
    login_as(page, "admin")
    target = _make_user("viewer")
    page.goto(f"{app_server}/settings")
    row = page.get_by_test_id("user-row").filter(has_text=target)
    expect(row).to_be_visible(timeout=TIMEOUT_MS)
    dialog = page.locator("#confirm-dialog")

    role = row.get_by_role("combobox", name=f"Role of {target}")
    role.click()
    page.get_by_role("option", name="editor").click()
    expect(dialog).to_contain_text(f"Change the role of {target} from viewer to editor?")
    page.locator("#confirm-cancel").click()
    expect(dialog).to_have_count(0)
    expect(role).to_have_text("viewer")
    assert _user(target).role == "viewer"

    role.click()
    page.get_by_role("option", name="editor").click()
    page.locator("#confirm-action").click()
    expect(role).to_have_text("editor", timeout=TIMEOUT_MS)
    assert _user(target).role == "editor"

    active = row.get_by_role("switch", name=f"{target} is active")
    expect(active).to_be_checked()
    active.click()
    expect(dialog).to_contain_text(f"Deactivate {target}?")
    page.locator("#confirm-cancel").click()
    expect(active).to_be_checked()
    assert _user(target).is_active

    active.click()
    page.locator("#confirm-action").click()
    expect(active).not_to_be_checked(timeout=TIMEOUT_MS)
    assert not _user(target).is_active

    active.click()  # reactivating is not destructive: no question
    expect(active).to_be_checked(timeout=TIMEOUT_MS)
    expect(dialog).to_have_count(0)
    assert _user(target).is_active


def test_the_inbox_says_when_nothing_was_decided_yet(
    page: Page, app_server: str, login_as: Callable[..., str], clean_db: str
) -> None:
    login_as(page, "operator")
    page.goto(f"{app_server}/inbox")
    expect(page.locator("#inbox-empty-state")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#inbox-history-empty")).to_contain_text("Nothing decided yet")
    expect(page.locator("#inbox-history")).to_have_count(0)
