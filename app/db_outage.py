"""What an open page shows when the database goes away: a banner that says so and retries.

A page loaded before the outage (or one whose caller was still in the session cache) keeps its
socket; its next event meets the database down, in the event guard's session lookup or in the
page's own handler. Reflex hands that exception to the app's backend exception handler: this one
turns a database outage (`engine.db_errors.outage_cause`) into a banner at the top of the page,
"The database is unavailable (...). Retrying every 5 s.", instead of Reflex's "An error occurred"
toast with a traceback in the log, and asks `/api/health/ready` every 5 s until it answers 200,
then reloads the page; meanwhile the banner names what the answer reports unavailable (the database
may come back while Redis is still away). It is a script the event sends back (no state, no handler
of ours to call, so nothing needs the database to show it). A page requested while the database is down is the
HTTP gate's 503 page (app/error_html.py), which refreshes itself on the same period.
Any other exception goes to Reflex's default handler.
"""

import json
import logging

import reflex as rx
from reflex.app import default_backend_exception_handler
from reflex.event import EventSpec

from app.error_html import RETRY_S
from engine.db_errors import describe_db_error, outage_cause

log = logging.getLogger(__name__)

BANNER_ID = "db-unavailable"
READY_PATH = "/api/health/ready"
# How the banner names what /api/health/ready reports unavailable.
PART_NAMES = {"database": "The database", "redis": "Redis (the task broker)", "workers": "The workers"}

_BANNER_SCRIPT = """(() => {
  let bar = document.getElementById(%(id)s);
  if (!bar) {
    bar = document.createElement("div");
    bar.id = %(id)s;
    bar.setAttribute("role", "alert");
    bar.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:2147483000;padding:10px 16px;"
      + "background:#ce2c31;color:#fff;font:500 14px/1.5 Inter,ui-sans-serif,system-ui,sans-serif;"
      + "text-align:center;box-shadow:0 2px 8px rgba(0,0,0,.2)";
    document.body.appendChild(bar);
  }
  bar.textContent = %(text)s;
  if (window.__flowloomDbRetry) return;
  const parts = %(parts)s;
  window.__flowloomDbRetry = setInterval(async () => {
    try {
      const answer = await fetch(%(ready)s, {cache: "no-store", credentials: "same-origin"});
      if (answer.ok) { clearInterval(window.__flowloomDbRetry); window.location.reload(); return; }
      // Still not ready: say what is away now (the database may be back while Redis is not).
      const away = ((await answer.json()).unavailable || []).map((name) => parts[name] || name);
      if (away.length) {
        document.getElementById(%(id)s).textContent =
          away.join(" and ") + (away.length > 1 ? " are" : " is") + %(tail)s;
      }
    } catch (e) { /* the web process itself is away: keep trying */ }
  }, %(period_ms)d);
})()"""


def banner_text(exc: BaseException) -> str:
    """What the banner says: what failed, and that the page retries by itself."""
    return f"{describe_db_error(exc).rstrip('.')}. Retrying every {RETRY_S} s."


def banner_script(exc: BaseException) -> str:
    """The script that shows (or updates) the banner and starts the one retry loop of the tab."""
    return _BANNER_SCRIPT % {
        "id": json.dumps(BANNER_ID),
        "text": json.dumps(banner_text(exc)),
        "ready": json.dumps(READY_PATH),
        "parts": json.dumps(PART_NAMES),
        "tail": json.dumps(f" unavailable. Retrying every {RETRY_S} s."),
        "period_ms": RETRY_S * 1000,
    }


def backend_exception_handler(exception: Exception) -> EventSpec | None:
    """rx.App's backend exception handler: the banner for a database outage, Reflex's default
    (a toast, the traceback in the log) for anything else."""
    cause = outage_cause(exception)
    if cause is not None:
        log.warning("an event met the database unavailable: %s", describe_db_error(cause))
        return rx.call_script(banner_script(cause))
    return default_backend_exception_handler(exception)
