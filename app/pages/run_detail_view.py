"""What the run page shows of a run, as plain strings: its header, one card per step (status,
timings, progress, error with its code and field, inputs and outputs) and its event log.

Pure functions of engine.run_detail.RunDetail, so they are testable without a browser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app import routes
from app.pages.formatting import format_time, short_id
from app.pages.run_filters import VIA_LABELS
from app.pages.runs_state import started_by_label
from engine.run_detail import RunDetail, StepProgress
from engine.run_events import RunEvent

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE_STEP = ("queued", "running", "waiting", "retrying")
MAX_SHOWN_CHARS = 20_000  # of one step's inputs or outputs
TRIGGER_LABELS = {
    "webhook": "webhook",
    "schedule": "schedule",
    "kafka": "Kafka",
    "form": "form",
    "chat": "chat",
}


@dataclass
class RunHeader:
    """The top of the run page."""

    short_id: str
    status: str
    error: str
    workflow: str
    editor_href: str  # "" for a run of an unsaved definition
    version: str  # "v3", "v3 (latest v5)" or "unsaved definition"
    started_by: str
    started_via: str
    trigger: str  # "hook (webhook)" or ""
    created: str
    started: str
    finished: str
    duration: str
    cancel_requested: bool
    source: str = ""  # "Re-run of 1a2b3c4d from step b" / "Fork of 1a2b3c4d" / ""
    source_href: str = ""
    parent: str = ""  # "Child run of 1a2b3c4d (step call)" for a run a sub-workflow step started
    parent_href: str = ""


@dataclass
class StepCard:
    """One visit of one node."""

    id: str
    node_id: str
    label: str
    node_type: str
    visit: int
    attempt: int
    status: str
    queued: str
    started: str
    finished: str
    duration: str
    error: str
    error_code: str
    error_field: str
    inputs: str
    outputs: str
    metrics: str
    progress_percent: int  # 0..100; -1 when no progress is shown
    progress_text: str
    reused: bool = False  # copied from the source run by a re-run: not executed in this run
    child: str = ""  # "child run 1a2b3c4d" for a sub-workflow step, with the link to that run
    child_href: str = ""


@dataclass
class EventLine:
    """One entry of the run's event log."""

    seq: int
    at: str
    event_type: str
    node_id: str
    text: str


def pretty(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """`value` as indented JSON, cut at `limit` characters ("" for None)."""
    if value is None:
        return ""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "\n… (cut)"


def clock(moment: datetime | None) -> str:
    """A time of day to the millisecond (UTC), or "—"."""
    return moment.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] if moment else "—"


def duration(start: datetime | None, end: datetime | None) -> str:
    """How long from `start` to `end` ("—" unless both are known)."""
    if not start or not end:
        return "—"
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def progress_of(step: dict[str, Any], report: StepProgress | None) -> tuple[int, str]:
    """(percent, text) of a step's latest progress report; (-1, "") when there is none to show.

    A report of an earlier attempt is not this attempt's progress; a finished step keeps its
    last note without a bar.
    """
    if report is None or (report.attempt is not None and report.attempt != step.get("attempt")):
        return -1, ""
    counts = _number(report.done) + (f" / {_number(report.total)}" if report.total else "")
    text = f"{counts} · {report.note}" if report.note else counts
    if step.get("status") not in ACTIVE_STEP:
        return -1, text
    fraction = report.fraction
    return (round(fraction * 100) if fraction is not None else 0), text


def _error_parts(step: dict[str, Any]) -> tuple[str, str, str]:
    """The error message, code and field of a failed step (its `error` port, else its error text)."""
    outputs = step.get("outputs") or {}
    port = outputs.get("error") if isinstance(outputs, dict) else None
    port = port if isinstance(port, dict) else {}
    message = step.get("error") or port.get("message") or ""
    return str(message), str(port.get("code") or ""), str(port.get("field") or "")


def step_cards(detail: RunDetail) -> list[StepCard]:
    """One card per step of the run, in the order they were queued."""
    labels = {
        n.get("id"): n.get("label") or "" for n in detail.definition.get("nodes") or [] if isinstance(n, dict)
    }
    limit = MAX_SHOWN_CHARS if len(detail.steps) <= 50 else MAX_SHOWN_CHARS // 4  # a big run stays light
    cards = []
    for s in detail.steps:
        message, code, field = _error_parts(s)
        percent, text = progress_of(s, detail.progress.get(str(s["id"])))
        cards.append(
            StepCard(
                id=str(s["id"]), node_id=s["node_id"], label=labels.get(s["node_id"]) or s["node_id"],
                node_type=s["node_type"], visit=s["visit"], attempt=s["attempt"], status=s["status"],
                queued=clock(s.get("queued_at")), started=clock(s.get("started_at")),
                finished=clock(s.get("finished_at")), duration=duration(s.get("started_at"), s.get("finished_at")),
                error=message if s["status"] == "failed" or s.get("error") else "", error_code=code,
                error_field=field, inputs=pretty(s.get("inputs"), limit), outputs=pretty(s.get("outputs"), limit),
                metrics=pretty(s.get("metrics") or None, limit), progress_percent=percent, progress_text=text,
                reused=s.get("reused_from") is not None,
                child=f"child run {short_id(str(s['child_run_id']))}" if s.get("child_run_id") else "",
                child_href=routes.run_page(str(s["child_run_id"])) if s.get("child_run_id") else "",
            )
        )  # fmt: skip
    return cards


def node_statuses(detail: RunDetail) -> dict[str, str]:
    """Each node's status in the run (its latest visit's); "skipped" once the run ended without it."""
    statuses = {step["node_id"]: step["status"] for step in detail.steps}
    if detail.status in TERMINAL:
        for node in detail.definition.get("nodes") or []:
            if isinstance(node, dict) and node.get("id") not in statuses:
                statuses[str(node.get("id"))] = "skipped"
    return statuses


def header(detail: RunDetail, now: datetime | None = None) -> RunHeader:
    """The run's header: what ran, which version, who and what started it, when."""
    if detail.version is None:
        version = "unsaved definition"
    elif detail.latest_version and detail.latest_version != detail.version:
        version = f"v{detail.version} (latest v{detail.latest_version})"
    else:
        version = f"v{detail.version}"
    trigger = ""
    if detail.trigger_id:
        kind = TRIGGER_LABELS.get(detail.trigger_kind or "", detail.trigger_kind or "trigger")
        trigger = f"{detail.trigger_key} ({kind})" if detail.trigger_key else kind
    end = detail.finished_at or (None if detail.status in TERMINAL else (now or datetime.now(UTC)))
    return RunHeader(
        short_id=short_id(detail.id), status=detail.status, error=detail.error or "",
        workflow=detail.workflow_name or str(detail.definition.get("name") or "(unsaved workflow)"),
        editor_href=routes.workflow_editor(detail.workflow_id) if detail.workflow_id else "",
        version=version, started_by=started_by_label(detail.started_by, detail.starter_email),
        started_via=VIA_LABELS.get(detail.started_via, detail.started_via or "—"), trigger=trigger,
        created=format_time(detail.created_at), started=format_time(detail.started_at),
        finished=format_time(detail.finished_at), duration=duration(detail.started_at or detail.created_at, end),
        cancel_requested=detail.cancel_requested and detail.status not in TERMINAL,
        source=source_label(detail), source_href=routes.run_page(detail.source_run_id) if detail.source_run_id else "",
        parent=parent_label(detail), parent_href=routes.run_page(detail.parent_run_id) if detail.parent_run_id else "",
    )  # fmt: skip


def parent_label(detail: RunDetail) -> str:
    """The run whose sub-workflow step started this one, as the header says it ("" for other runs)."""
    if not detail.parent_run_id:
        return ""
    step = f" (step {detail.parent_node_id})" if detail.parent_node_id else ""
    return f"Child run of {short_id(detail.parent_run_id)}{step}"


def source_label(detail: RunDetail) -> str:
    """Where a re-run or fork came from, as the header says it ("" for a run started afresh)."""
    if not detail.source_run_id:
        return ""
    if detail.source_kind == "fork":
        return f"Fork of {short_id(detail.source_run_id)} with new inputs"
    return f"Re-run of {short_id(detail.source_run_id)} from step {detail.source_node_id}"


def _event_text(event: RunEvent) -> str:
    data = (event.payload or {}).get("data") or {}
    if not isinstance(data, dict):
        return ""
    if event.event_type.endswith("progress"):
        total = f" / {_number(data['total'])}" if isinstance(data.get("total"), int | float) else ""
        done = _number(data["done"]) if isinstance(data.get("done"), int | float) else "?"
        return f"{done}{total} {data.get('note') or ''}".strip()
    for key in ("error", "status", "action", "kind", "title"):
        if data.get(key):
            return f"{key}: {str(data[key])[:300]}"
    if data.get("attempt"):
        return f"attempt {data['attempt']}"
    return ""


def event_lines(detail: RunDetail) -> list[EventLine]:
    """The run's latest events as log lines, newest last."""
    return [
        EventLine(
            seq=e.seq,
            at=clock(e.created_at),
            event_type=e.event_type,
            node_id=str(((e.payload or {}).get("data") or {}).get("node_id") or ""),
            text=_event_text(e),
        )  # fmt: skip
        for e in detail.events
    ]
