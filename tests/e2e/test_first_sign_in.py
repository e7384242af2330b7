"""What a new admin sees right after signing in: no refusal toast, and every admin page in the sidebar.

A sign-in without a `next` lands on "/", which Reflex names "index": the page check once took that
for an unknown page and answered with a redirect and the toast "This action is not allowed." after
every local admin sign-in. The landing page must be the workflow list, with no refusal.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.test_sso import sign_in_at_provider
from tests.oidc.provider import OIDCProviderProcess

REFUSALS = re.compile(r"not allowed|needs the \w+ role")


def _settle(page: Page) -> None:
    """Wait until the tab's socket has answered one more event: Reflex answers a tab's events in order,
    so a refusal of anything the sign-in or the page load sent would have arrived before this one."""
    page.locator("#new-workflow-button, #empty-new-workflow-button").first.click()
    expect(page.locator("#new-workflow-name")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#new-workflow-name")).to_have_count(0)


def test_admin_sign_in_through_the_provider_shows_no_refusal_and_lists_settings(
    page: Page, app_server: str, oidc_provider: OIDCProviderProcess
) -> None:
    page.goto(f"{app_server}/workflows")
    page.wait_for_url(re.compile(r"/login/?\?next=%2Fworkflows$"))
    page.get_by_test_id("provider-button").click()
    page.wait_for_url(f"{oidc_provider.issuer}/**")
    sign_in_at_provider(page, "alice")
    expect(page).to_have_url(re.compile(rf"^{app_server}/workflows/?$"))
    expect(page.locator("#account-role")).to_have_text("admin")
    _settle(page)

    expect(page.locator("[data-sonner-toast]").filter(has_text=REFUSALS)).to_have_count(0)
    for link in ("#nav-settings", "#nav-secrets", "#nav-dead-letters"):
        expect(page.locator(link)).to_be_visible()
    page.locator("#nav-settings").click()
    expect(page).to_have_url(re.compile(rf"^{app_server}/settings/?$"))
    expect(page.locator("#nav-settings")).to_have_attribute("aria-current", "page")
    expect(page.locator("[data-sonner-toast]").filter(has_text=REFUSALS)).to_have_count(0)


def test_local_admin_signing_in_at_the_login_page_lands_home_without_a_refusal(
    page: Page, app_server: str, pg_url: str, monkeypatch
) -> None:
    import uuid

    from app.auth import local
    from app.db import db_session
    from engine.settings import get_settings

    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    email, password = f"admin-{uuid.uuid4().hex[:6]}@example.test", "a long local password"
    with db_session() as session:
        local.set_password(session, email, password, actor="test")
    get_settings.cache_clear()

    page.goto(f"{app_server}/login")
    page.fill("#email-input", email)
    page.fill("#password-input", password)
    page.click("#local-sign-in")
    expect(page).to_have_url(re.compile(rf"^{app_server}/?$"))
    expect(page.locator("#account-role")).to_have_text("admin")
    expect(page.get_by_role("heading", name="Workflows", exact=True)).to_be_visible()  # not a 404
    expect(page.locator("#nav-workflows")).to_have_attribute("aria-current", "page")
    _settle(page)
    expect(page.locator("[data-sonner-toast]").filter(has_text=REFUSALS)).to_have_count(0)
    expect(page.locator("#nav-settings")).to_be_visible()


def test_operator_sidebar_has_settings_but_no_admin_pages(page: Page, app_server: str, login_as) -> None:
    login_as(page, "operator")
    page.goto(f"{app_server}/workflows")
    expect(page.locator("#account-role")).to_have_text("operator")
    expect(page.locator("#nav-settings")).to_be_visible()
    expect(page.locator("#nav-secrets")).to_have_count(0)
    expect(page.locator("#nav-dead-letters")).to_have_count(0)
