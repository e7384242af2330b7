"""The editor's live view of a run in headless Chromium against the production build: how soon a
step's end shows on the canvas.

A workflow of start -> STEPS sequential `sleep` tool steps (SLEEP_S each) -> end is opened in the
editor and run with its Run button, RUNS times (a fresh tab each). For every node's step end it
measures, in the page:
- message: the websocket message whose state delta first carries the node as "succeeded" arriving
  (performance.now() in a `message` listener registered before Reflex's own);
- painted: the first frame after a MutationObserver sees the node's `data-status` turn
  "succeeded" (requestAnimationFrame after the mutation, as bench/editor.py measures frames);
- the step's `workflow.step.completed` row in PostgreSQL's `events` (its created_at, stamped by
  the worker), on the page's clock: same machine, so the offset between the page's
  performance.timeOrigin + now() and Date.now() is calibrated and the server's wall clock is
  Date.now()'s.
It prints p50 / p95 / max of painted - message and how many were within one 60 Hz frame (16.7 ms),
the message -> DOM change part, and event row -> message (the server's share: commit, NOTIFY, the
web process's re-read of the run and the state delta) p50 / p95. Then the aim, met or missed.
It prints the machine's load average: on a shared machine compare runs made at the same load.

Run: `python bench/editor_live.py` (starts `flowloom up` on its own embedded PostgreSQL, as
bench/editor.py does), or with `--base-url URL --database-url URL --secret-key KEY` against a
running one. Set REFLEX_WEB_WORKDIR to build somewhere other than .web.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.editor import (  # noqa: E402
    editor_token,
    embedded_flowloom,
    launch_chromium,
    signed_in_context,
    use_database,
)
from engine.settings import get_settings  # noqa: E402
from models.db import get_engine  # noqa: E402

STEPS = 10
SLEEP_S = 0.2
RUNS = 3
FRAME_MS = 1000 / 60
TIMEOUT_MS = 120_000

# Per node: when the socket message first carrying it as "succeeded" arrived, when its DOM node
# turned "succeeded" and the frame after that. NODES is filled in with the workflow's node ids.
LIVE_SCRIPT = """
(() => {
  const NODES = __NODES__;
  const STATUSES = new Set(['queued', 'running', 'succeeded', 'failed', 'waiting', 'skipped', 'cancelled']);
  const L = (window.__live = { messages: 0, unparsed: 0, arrived: {}, changed: {}, painted: {} });
  // A node-status map anywhere in the delta: an object with a watched node id holding a status.
  const statusMaps = (value, out, depth) => {
    if (!value || typeof value !== 'object' || depth > 12) return out;
    if (!Array.isArray(value) && NODES.some((id) => STATUSES.has(value[id]))) out.push(value);
    for (const v of Object.values(value)) statusMaps(v, out, depth + 1);
    return out;
  };
  const OrigWS = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new OrigWS(...args);
    ws.addEventListener('message', (e) => {  // before socket.io's onmessage: nothing handled it yet
      const t = performance.now();
      const data = String(e.data);
      if (!data.startsWith('42')) return;  // socket.io events, not pings
      L.messages++;
      let succeeded;
      try {
        const maps = statusMaps(JSON.parse(data.slice(data.indexOf('['))), [], 0);
        succeeded = NODES.filter((id) => maps.some((m) => m[id] === 'succeeded'));
      } catch {
        L.unparsed++;
        succeeded = NODES.filter((id) => data.includes(`"${id}":"succeeded"`));
      }
      for (const id of succeeded) if (!(id in L.arrived)) L.arrived[id] = t;
    });
    return ws;
  };
  window.WebSocket.prototype = OrigWS.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  const watch = () => {
    new MutationObserver(() => {
      const t = performance.now();
      for (const el of document.querySelectorAll('[data-testid=flow-node][data-status=succeeded]')) {
        const id = el.dataset.nodeId;
        if (id in L.changed) continue;
        L.changed[id] = t;
        requestAnimationFrame(() => { L.painted[id] = performance.now(); });
      }
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
  };
  document.addEventListener('DOMContentLoaded', watch);
})();
"""

# Date.now() minus the page's high-resolution clock (timeOrigin + now), a few samples.
CLOCK_SAMPLES = (
    "() => Array.from({ length: 9 }, () => Date.now() - (performance.timeOrigin + performance.now()))"
)


@dataclass
class LiveRun:
    """One run's per-node times on the page's performance.now() clock (ms)."""

    node_ids: list[str]
    arrived: dict[str, float]  # the socket message first carrying the node as succeeded
    changed: dict[str, float]  # the node's DOM element turned succeeded
    painted: dict[str, float]  # the frame after that
    event: dict[str, float]  # the step's completed event row (created_at), on the page's clock
    messages: int  # socket.io event messages the page received, from navigation to the run's end


def live_definition(steps: int = STEPS, seconds: float = SLEEP_S) -> dict:
    """start -> `steps` sequential `sleep` steps of `seconds` -> end, in a row."""
    ids = ["start", *(f"s{i}" for i in range(1, steps + 1)), "end"]
    nodes = []
    for i, node_id in enumerate(ids):
        node_type = "start" if i == 0 else "end" if i == len(ids) - 1 else "tool.python"
        config = {"tool": "sleep", "args": {"seconds": seconds}} if node_type == "tool.python" else {}
        nodes.append({"id": node_id, "type": node_type, "label": f"Step {i}", "config": config,
                      "position": {"x": i * 260.0, "y": (i % 2) * 120.0}})  # fmt: skip
    edges = [
        {"id": f"e{i}", "source": ids[i], "source_port": "out", "target": ids[i + 1], "target_port": "in"}
        for i in range(len(ids) - 1)
    ]
    return {"name": "bench live", "nodes": nodes, "edges": edges}


def create_live_workflow(database_url: str, definition: dict) -> str:
    """The workflow (with version 1) in the default workspace; its id."""
    use_database(database_url)
    from app import db
    from engine import workflows

    with db.db_session() as session:
        return str(
            workflows.create_workflow(session, f"bench live {uuid.uuid4().hex[:6]}", definition=definition).id
        )


def _latest_run(database_url: str, workflow_id: str) -> str | None:
    with get_engine(database_url).connect() as conn:
        row = conn.execute(
            text("SELECT id FROM runs WHERE workflow_id = :w ORDER BY created_at DESC LIMIT 1"),
            {"w": workflow_id},
        ).first()
    return str(row[0]) if row else None


def step_end_times(database_url: str, run_id: str) -> dict[str, float]:
    """Each node's first `workflow.step.completed` event of the run: created_at, epoch ms."""
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT payload->'data'->>'node_id', min(extract(epoch FROM created_at)) * 1000 FROM events"
                " WHERE run_id = :r AND event_type = 'workflow.step.completed' GROUP BY 1"
            ),
            {"r": run_id},
        ).all()
    return {str(node): float(ms) for node, ms in rows}


def measure_live(
    page: Page, base_url: str, database_url: str, workflow_id: str, node_ids: list[str]
) -> LiveRun:
    """Open the workflow in `page` (signed in as an editor), start a run with the Run button and time
    each node's step end: message arrival, DOM change, painted frame and the server's event row."""
    page.add_init_script(LIVE_SCRIPT.replace("__NODES__", json.dumps(node_ids)))
    page.goto(f"{base_url}/workflows/{workflow_id}")
    page.wait_for_function(
        f"() => document.querySelectorAll('#editor[data-loaded=true] [data-testid=flow-node]').length"
        f" === {len(node_ids)}",
        timeout=TIMEOUT_MS,
    )
    before = _latest_run(database_url, workflow_id)
    page.click("#run-button")
    page.wait_for_function(
        f"() => Object.keys(window.__live.painted).length >= {len(node_ids)}", timeout=TIMEOUT_MS
    )
    live = page.evaluate("() => window.__live")
    samples = page.evaluate(CLOCK_SAMPLES)
    origin = page.evaluate("() => performance.timeOrigin")
    run_id = _latest_run(database_url, workflow_id)
    if run_id is None or run_id == before:
        raise RuntimeError("the Run button started no run")
    offset = statistics.median(samples)  # Date.now() = timeOrigin + now() + offset
    ends = step_end_times(database_url, run_id)
    return LiveRun(
        node_ids=list(node_ids),
        arrived=live["arrived"],
        changed=live["changed"],
        painted=live["painted"],
        event={node: ms - origin - offset for node, ms in ends.items()},
        messages=int(live["messages"]),
    )


def frame_lags(runs: list[LiveRun]) -> list[float]:
    """Message arrival -> painted frame (ms), one per node step end that has both."""
    return [
        r.painted[n] - r.arrived[n] for r in runs for n in r.node_ids if n in r.painted and n in r.arrived
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


def live_lines(runs: list[LiveRun], steps: int, seconds: float) -> list[str]:
    """The report: message -> frame, message -> DOM change and event row -> message."""
    lags = frame_lags(runs)
    dom = [r.changed[n] - r.arrived[n] for r in runs for n in r.node_ids if n in r.changed and n in r.arrived]
    server = [r.arrived[n] - r.event[n] for r in runs for n in r.node_ids if n in r.event and n in r.arrived]
    expected = sum(len(r.node_ids) for r in runs)
    within = sum(1 for lag in lags if lag <= FRAME_MS)
    messages = statistics.median([r.messages for r in runs]) if runs else 0
    return [
        f"Editor live view: {len(runs)} run(s) of start -> {steps} sleep steps ({seconds:g} s each) -> end,"
        " headless Chromium, production build",
        f"  step ends measured: {len(lags)} of {expected}; socket messages per run (median): {messages:.0f}",
        f"  message -> painted frame: p50 {_pct(lags, 0.5):.1f} ms, p95 {_pct(lags, 0.95):.1f} ms,"
        f" max {max(lags, default=float('nan')):.1f} ms; {within} of {len(lags)} within one 60 Hz frame (16.7 ms)",
        f"  message -> DOM change: p50 {_pct(dom, 0.5):.1f} ms, p95 {_pct(dom, 0.95):.1f} ms",
        f"  event row created_at -> message: p50 {_pct(server, 0.5):.1f} ms, p95 {_pct(server, 0.95):.1f} ms"
        f" ({len(server)} step ends)",
    ]


def run(
    base_url: str, database_url: str, runs: int = RUNS, steps: int = STEPS, seconds: float = SLEEP_S
) -> None:
    definition = live_definition(steps, seconds)
    node_ids = [n["id"] for n in definition["nodes"]]
    workflow_id = create_live_workflow(database_url, definition)
    from app import db

    with db.db_session() as session:
        token = editor_token(session)
    load_before = os.getloadavg()
    results = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for _ in range(runs):  # a fresh tab each run: nothing of the last run on the canvas
            context = signed_in_context(browser, base_url, token, "")
            try:
                results.append(
                    measure_live(context.new_page(), base_url, database_url, workflow_id, node_ids)
                )
            finally:
                context.close()
        browser.close()
    print()
    for line in live_lines(results, steps, seconds):
        print(line)
    print(f"machine load (1-minute average, {os.cpu_count()} cores): {load_before[0]:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")  # fmt: skip
    lags = frame_lags(results)
    p95 = _pct(lags, 0.95)
    print(f"{'meets' if p95 <= FRAME_MS else 'misses'}: a step's end on screen within one 60 Hz frame of its"
          f" message, p95 ({p95:.1f} ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running Flowloom (else one is started)")
    parser.add_argument("--database-url", help="its database (with --base-url)")
    parser.add_argument("--secret-key", help="its FLOWLOOM_SECRET_KEY (with --base-url)")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args()
    if args.base_url:
        if args.secret_key:
            os.environ["FLOWLOOM_SECRET_KEY"] = args.secret_key
        run(
            args.base_url.rstrip("/"), args.database_url or get_settings().database_url, args.runs, args.steps
        )
        return
    with embedded_flowloom() as (base_url, database_url):
        run(base_url, database_url, args.runs, args.steps)


if __name__ == "__main__":
    main()
