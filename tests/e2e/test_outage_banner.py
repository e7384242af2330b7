"""The database-outage banner's retry loop in Chromium: while /api/health/ready still answers 503 it
names what the answer reports unavailable (the database may be back while Redis is not), and once it
answers 200 the page reloads without the banner. The page and the health answers are served by
Playwright's request routing (nothing leaves the browser)."""

from __future__ import annotations

import json

from playwright.sync_api import Page, Route
from sqlalchemy.exc import OperationalError

from app.db_outage import BANNER_ID, READY_PATH, banner_script

ORIGIN = "http://127.0.0.1:9"  # never contacted: every request is answered by the route below


def test_the_banner_says_what_is_still_away_and_reloads_when_ready(page: Page) -> None:
    ready = {"status": 503, "body": {"status": "degraded", "unavailable": ["redis"]}}
    loads: list[str] = []

    def answer(route: Route) -> None:
        if route.request.url.endswith(READY_PATH):
            route.fulfill(
                status=ready["status"], content_type="application/json", body=json.dumps(ready["body"])
            )
        else:
            loads.append(route.request.url)
            route.fulfill(
                status=200, content_type="text/html", body="<html><body><main>page</main></body></html>"
            )

    page.route("**/*", answer)
    page.goto(f"{ORIGIN}/workflows")
    cause = OperationalError("SELECT 1", {}, Exception("connection refused"))
    page.evaluate(banner_script(cause))

    banner = page.locator(f"#{BANNER_ID}")
    assert banner.get_attribute("role") == "alert"
    assert banner.inner_text().startswith("The database is unavailable")
    # The next retry meets the database back and Redis still away: the banner says so.
    page.wait_for_function(
        f"document.getElementById({json.dumps(BANNER_ID)}).textContent.startsWith('Redis')", timeout=15_000
    )
    assert banner.inner_text() == "Redis (the task broker) is unavailable. Retrying every 5 s."

    ready.update(status=200, body={"status": "ok"})
    page.wait_for_function(f"!document.getElementById({json.dumps(BANNER_ID)})", timeout=15_000)
    assert len(loads) == 2  # the first load and the reload once ready
