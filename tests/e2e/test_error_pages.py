"""Error pages in Chromium: a page the role does not allow is a 403 in the app's layout (sidebar and
all) saying which role it needs, an unknown address a 404 in the layout; neither is plain text."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.axe.axe import run_axe, serious_ones

TIMEOUT_MS = 20_000


def test_a_page_above_my_role_is_a_403_page_in_the_layout(
    page: Page, app_server: str, login_as: Callable[..., str]
) -> None:
    email = login_as(page, "viewer")
    response = page.goto(f"{app_server}/secrets")
    assert response is not None and response.status == 403
    assert response.headers["content-type"].startswith("text/html")
    error = page.locator("#error-page")
    expect(error).to_be_visible(timeout=TIMEOUT_MS)
    expect(error).to_have_attribute("data-status", "403")
    expect(error).to_contain_text("You don't have access to this page")
    expect(error).to_contain_text(f"This page needs the admin role; you are signed in as {email} (viewer)")
    expect(page.locator("#sidebar")).to_be_visible()  # the app's layout, not a bare message
    expect(page.locator("#secrets-page, [data-testid=secret-row]")).to_have_count(0)
    assert not serious_ones(run_axe(page))

    page.locator("#nav-workflows").click()  # the layout still works: on to a page I may see
    expect(page.locator("#error-page")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", level=1)).to_have_text("Workflows")


def test_an_unknown_address_is_a_404_page_in_the_layout(
    page: Page, app_server: str, login_as: Callable[..., str]
) -> None:
    login_as(page, "viewer")
    response = page.goto(f"{app_server}/no/such/page")
    assert response is not None and response.status == 404
    error = page.locator("#error-page")
    expect(error).to_be_visible(timeout=TIMEOUT_MS)
    expect(error).to_have_attribute("data-status", "404")
    expect(error).to_contain_text("Page not found")
    expect(page.locator("#sidebar")).to_be_visible()
    assert not serious_ones(run_axe(page))
    page.locator("#error-home").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Workflows", timeout=TIMEOUT_MS)


def test_a_refused_page_reached_inside_the_app_shows_the_403_too(
    page: Page, app_server: str, login_as: Callable[..., str]
) -> None:
    login_as(page, "viewer")
    page.goto(f"{app_server}/workflows")
    expect(page.get_by_role("heading", level=1)).to_have_text("Workflows", timeout=TIMEOUT_MS)
    page.locator("#nav-inbox").click()  # in the sidebar for everyone; deciding needs an operator
    expect(page.locator("#error-page")).to_contain_text("needs the operator role", timeout=TIMEOUT_MS)
    expect(page.locator("#inbox-table, #inbox-empty-state")).to_have_count(0)
    page.locator("#nav-runs").click()
    expect(page.locator("#error-page")).to_have_count(0, timeout=TIMEOUT_MS)
