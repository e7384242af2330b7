"""Sign-in in Chromium through a real OpenID provider (node-oidc-provider), sign-out, and refusals."""

from __future__ import annotations

import re
from urllib.parse import urljoin

from playwright.sync_api import Page, Route, expect

from tests.oidc.provider import OIDCProviderProcess


def sign_in_at_provider(page: Page, login: str) -> None:
    """Fill the provider's dev login form, then its consent form."""
    page.fill('input[name="login"]', login)
    page.fill('input[name="password"]', "any password")
    page.click('button[type="submit"]')
    page.wait_for_selector('input[name="prompt"][value="consent"]', state="attached")
    page.click('button[type="submit"]')


def test_sign_in_with_the_openid_provider_lands_on_the_app_and_sign_out_ends_it(
    page: Page, app_server: str, oidc_provider: OIDCProviderProcess
) -> None:
    page.goto(f"{app_server}/workflows")
    page.wait_for_url(re.compile(r"/login/?\?next=%2Fworkflows$"))
    page.get_by_test_id("provider-button").click()
    page.wait_for_url(f"{oidc_provider.issuer}/**")
    sign_in_at_provider(page, "alice")

    expect(page).to_have_url(re.compile(rf"^{app_server}/workflows/?$"))
    expect(page.locator("#account-email")).to_have_text("alice@example.test")
    expect(page.locator("#account-role")).to_have_text("admin")
    cookie = next(c for c in page.context.cookies() if c["name"] == "flowloom_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    page.click("#sign-out")
    page.wait_for_url(re.compile(r"/login/?\?signed_out=1$"))
    expect(page.locator("#login-notice")).to_contain_text("signed out")
    assert not [c for c in page.context.cookies() if c["name"] == "flowloom_session"]
    page.goto(f"{app_server}/runs")
    page.wait_for_url(re.compile(r"/login/?\?next=%2Fruns$"))


def test_callback_with_a_tampered_state_is_refused_in_the_browser(
    page: Page, app_server: str, oidc_provider: OIDCProviderProcess
) -> None:
    def tamper(route: Route) -> None:
        """Follow the consent answer's redirects ourselves and send the browser a forged state."""
        if route.request.method != "POST" or "prompt=consent" not in (route.request.post_data or ""):
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        location = urljoin(route.request.url, response.headers["location"])
        while not location.startswith(app_server):
            response = page.context.request.get(location, max_redirects=0)
            location = urljoin(location, response.headers["location"])
        route.fulfill(status=303, headers={"Location": re.sub(r"state=[^&]+", "state=tampered", location)})

    page.route(re.compile(rf"^{re.escape(oidc_provider.issuer)}/interaction/.*"), tamper)
    page.goto(f"{app_server}/login")
    page.get_by_test_id("provider-button").click()
    sign_in_at_provider(page, "mallory")
    expect(page).to_have_url(re.compile(r"/login/?\?error=state$"))
    expect(page.locator("#login-error")).to_contain_text("state did not match")
    assert not [c for c in page.context.cookies() if c["name"] == "flowloom_session"]


def test_every_page_sends_an_anonymous_visitor_to_sign_in(page: Page, app_server: str) -> None:
    import app.app as reflex_app
    from app.auth.policy import PUBLIC, page_access

    routes = ["/" if r == "index" else "/" + r for r in reflex_app.app._unevaluated_pages]
    for route in routes:
        path = re.sub(r"\[[^\]]+\]", "00000000-0000-0000-0000-000000000000", route)
        page.goto(app_server + path)
        if page_access(route) == PUBLIC:
            expect(page).to_have_url(re.compile(rf"{re.escape(path)}/?$"))
        else:
            expect(page).to_have_url(
                re.compile(r"/login/?\?next=" + re.escape(path.replace("/", "%2F")) + "$")
            )


def test_viewer_cannot_create_a_workflow_even_by_submitting_the_form(
    page: Page, app_server: str, login_as
) -> None:
    login_as(page, "viewer")
    page.goto(f"{app_server}/workflows")
    expect(page.locator("#account-role")).to_have_text("viewer")
    page.locator("#new-workflow-button, #empty-new-workflow-button").first.click()
    page.fill("#new-workflow-name", "Should not exist")
    page.click("#create-workflow-submit")
    expect(page.get_by_text("This needs the editor role")).to_be_visible()
    page.reload()
    expect(page.locator("body")).not_to_contain_text("Should not exist")


def test_api_key_made_in_settings_is_shown_once_works_and_stops_when_revoked(
    page: Page, app_server: str, login_as
) -> None:
    import httpx

    login_as(page, "operator", "keys@example.test")
    page.goto(f"{app_server}/settings")
    page.fill("#new-key-name", "ci")
    page.click("#create-key")
    expect(page.locator("#created-key")).to_have_value(re.compile(r"^flk_"))
    key = page.locator("#created-key").input_value()  # in the page only, never in Reflex state
    me = httpx.get(f"{app_server}/api/me", headers={"Authorization": f"Bearer {key}"})
    assert (
        me.status_code == 200 and me.json()["email"] == "keys@example.test" and me.json()["role"] == "viewer"
    )

    page.reload()
    expect(page.get_by_test_id("key-row")).to_have_count(1)
    assert key not in page.content()
    page.get_by_test_id("key-row").get_by_role("button", name="Revoke").click()
    expect(page.locator("#confirm-text")).to_contain_text("Revoke the key “ci”")  # asked first
    page.locator("#confirm-action").click()
    expect(page.get_by_test_id("key-row")).to_contain_text("revoked")
    assert httpx.get(f"{app_server}/api/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
