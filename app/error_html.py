"""The error page the server sends itself when it cannot serve the app's page (500, 503).

A 403 or 404 is a page of the app (app/error_views.py, in its layout, rendered by the browser). When
the server fails before the app can answer (the database is down, an unexpected error in front of the
pages), the browser gets this static HTML instead of a bare "Internal Server Error": the app's brand,
what happened and what to try, in the app's colours, light or dark as the system says. It needs no
script, no state and no database.
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

from app import routes

API_PREFIXES = ("/api/", "/auth/", "/v1/")  # paths that answer problem+json, never this page
# A 503 (the database is down) is about this moment: the page asks again by itself this often
# (a meta refresh, no script), and says so; the response's Retry-After says the same.
RETRY_S = 5

TITLES = {
    500: "Something went wrong on our side",
    502: "The app is not answering",
    503: "Flowloom cannot serve this page right now",
}

_STYLE = """
:root { color-scheme: light dark; --bg: #f8f9fa; --panel: #fff; --text: #1c2024; --muted: #60646c;
  --line: #e0e1e6; --accent: #6e56cf; --accent-text: #fff; --code: #6e56cf; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #111113; --panel: #18191b; --text: #edeef0; --muted: #b0b4ba; --line: #2e3135;
    --accent: #6e56cf; --accent-text: #fff; --code: #baa7ff; }
}
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; background: var(--bg); color: var(--text);
  font-family: Inter, ui-sans-serif, system-ui, -apple-system, 'Segoe UI', sans-serif; }
header { display: flex; align-items: center; gap: 8px; padding: 16px 24px; border-bottom: 1px solid var(--line); }
header a { display: flex; align-items: center; gap: 8px; color: var(--text); text-decoration: none; font-weight: 700; }
main { max-width: 36rem; margin: 12vh auto 0; padding: 0 24px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 16px; padding: 32px; }
.code { font-size: 14px; font-weight: 600; color: var(--code); letter-spacing: .04em; margin: 0 0 8px; }
h1 { font-size: 24px; margin: 0 0 12px; }
p { color: var(--muted); line-height: 1.5; margin: 0 0 20px; }
.actions { display: flex; gap: 12px; flex-wrap: wrap; }
.actions a { padding: 8px 14px; border-radius: 8px; text-decoration: none; font-weight: 500; font-size: 14px;
  border: 1px solid var(--line); color: var(--text); }
.actions a.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); }
a:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
"""


def is_page_path(path: str) -> bool:
    """True for a path a browser shows as a page (not the REST API, the sign-in routes or /v1)."""
    return not (path.startswith(API_PREFIXES) or path in ("/api", "/auth", "/v1", "/metrics"))


def error_html(status: int, detail: str, path: str = "") -> str:
    """The whole HTML document of the error page for `status`, saying `detail` (escaped)."""
    title = TITLES.get(status, "Something went wrong")
    again = escape(
        path if path.startswith("/") and not path.startswith("//") else routes.WORKFLOWS, quote=True
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{status} · {escape(title)} · Flowloom</title>"
        + (f'<meta http-equiv="refresh" content="{RETRY_S}">' if status == 503 else "")
        + '<link rel="icon" href="/favicon.svg" type="image/svg+xml">'
        f"<style>{_STYLE}</style></head><body>"
        f'<header><a href="{routes.WORKFLOWS}"><img src="/logo.svg" width="28" height="28" alt="">Flowloom</a></header>'
        f'<main><div class="card" id="error-page" data-status="{status}">'
        f'<p class="code">Error {status}</p><h1>{escape(title)}</h1><p id="error-detail">{escape(detail)}</p>'
        + (
            f'<p id="error-retry">Retrying every {RETRY_S} s: this page reloads by itself.</p>'
            if status == 503
            else ""
        )
        + f'<div class="actions"><a class="primary" href="{again}">Try again</a>'
        f'<a href="{routes.WORKFLOWS}">Go to workflows</a></div></div></main></body></html>'
    )


def error_page_response(status: int, detail: str, path: str = "") -> HTMLResponse:
    """`error_html` as a response with that status (never cached: it is about this moment)."""
    headers = {"Cache-Control": "no-store"} | ({"Retry-After": str(RETRY_S)} if status == 503 else {})
    return HTMLResponse(error_html(status, detail, path), status_code=status, headers=headers)
