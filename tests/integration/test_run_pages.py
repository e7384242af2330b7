"""The Runs page and a run's page on real states, PostgreSQL and workers: filters, search and keyset
pages narrow and move the list; a run's page shows its steps, outputs, error codes and progress;
Cancel needs an operator and stops the run; an unknown id is "not found"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reflex.istate.data import RouterData
from reflex_base.constants import RouteVar
from sqlalchemy import select, text

import app.app  # noqa: F401 - registers the pages and their states, as the running app does
from app.auth import sessions
from app.db import db_session
from app.pages import run_detail_view
from app.pages.run_detail_state import RunDetailState
from app.pages.runs_state import PAGE_SIZE, RunsState, read_page
from engine.contract import StepContext
from engine.run_detail import get_run_detail
from engine.runs import list_runs, run_starters, start_run
from engine.settings import get_settings
from engine.workflows import create_workflow, saved_version
from models.auth import AuditLog, User
from models.db import get_engine
from models.tables import Event
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def reflex_tab(state_cls, user: User, path: str, route: str):
    """A real instance of `state_cls` in a fresh tab signed in as `user`, open at `path`."""
    token, _ = sessions.issue(str(user.id))
    root = state_cls.get_root_state()(_reflex_internal_init=True)
    root.router = RouterData.from_router_data(
        {
            RouteVar.HEADERS: {
                "cookie": f"{sessions.COOKIE_NAME}={token}",
                "origin": "http://127.0.0.1:3000",
            },
            RouteVar.ORIGIN: path,
            RouteVar.PATH: route,
        }
    )
    return root.get_substate(state_cls.get_full_name().split(".")[1:])


def saved(name: str, definition: dict[str, Any]) -> str:
    with db_session() as session:
        return str(create_workflow(session, name, definition=definition).id)


def run_saved(
    workflow_id: str, user: User | None = None, via: str = "api", inputs: dict | None = None
) -> str:
    version = saved_version(workflow_id)
    assert version is not None
    return start_run(
        version.definition, inputs or {}, workflow_id=workflow_id, version_id=version.version_id,
        created_by=str(user.id) if user else None, started_by=f"user:{user.id}" if user else "cli:tester",
        started_via=via,
    )  # fmt: skip


def quick(name: str) -> dict[str, Any]:
    return workflow([node("START", "start"), node("END", "end")], [("START", "END")], name=name).to_dict()


def failing() -> dict[str, Any]:
    """START -> ADD (2 + 3) -> QUERY (an unknown SQL connection: fails with a code) -> END."""
    return workflow(
        [node("START", "start"), node("ADD", "tool.python", tool="add", args={"a": 2, "b": 3}),
         node("QUERY", "tool.sql", connection="nowhere", query="select 1"), node("END", "end")],
        [("START", "ADD"), ("ADD", "QUERY"), ("QUERY", "END")],
        name="adds then fails",
    ).to_dict()  # fmt: skip


def waiting() -> dict[str, Any]:
    """START -> WAIT (an hour's delay: the step waits on a timer) -> END."""
    return workflow(
        [node("START", "start"), node("WAIT", "delay", seconds=3600), node("END", "end")],
        [("START", "WAIT"), ("WAIT", "END")],
        name="waits an hour",
    ).to_dict()


def ids(tab) -> list[str]:
    return [row.id for row in tab.rows]


# ---- the Runs page ------------------------------------------------------------------------------


def test_the_runs_page_pages_by_keyset_and_filters_narrow_the_list(make_user) -> None:
    operator, viewer = make_user("operator"), make_user("viewer")
    invoices, news = saved("Invoice triage", quick("invoices")), saved("Newsletter", quick("news"))
    mine = [run_saved(invoices, operator) for _ in range(PAGE_SIZE + 2)]
    cli = [run_saved(news, None, via="cli") for _ in range(3)]
    for run_id in mine + cli:
        wait_for_run(run_id)

    tab = reflex_tab(RunsState, viewer, "/runs", "/runs")
    RunsState.load.fn(tab)
    newest = list(reversed(mine + cli))
    assert ids(tab) == newest[:PAGE_SIZE] and tab.has_older and not tab.has_newer
    RunsState.older.fn(tab)
    assert ids(tab) == newest[PAGE_SIZE:] and not tab.has_older and tab.has_newer and tab.page_no == 1
    assert tab.page_label == f"{PAGE_SIZE + 1}–{len(newest)}"
    RunsState.older.fn(tab)  # there is no page after the last: nothing moves
    assert ids(tab) == newest[PAGE_SIZE:] and tab.page_no == 1
    late = run_saved(news, None, via="cli")
    wait_for_run(late)
    # What the page's watcher re-reads: a new run shifts nothing on an older page (keyset, not offset).
    assert [row.id for row in read_page(*tab._shown()).rows] == newest[PAGE_SIZE:]
    RunsState.newer.fn(tab)
    assert ids(tab) == [late, *newest[: PAGE_SIZE - 1]] and tab.page_no == 0
    RunsState.older.fn(tab)
    assert ids(tab) == newest[PAGE_SIZE - 1 :]

    RunsState.set_filter.fn(tab, "workflow", news)
    assert set(ids(tab)) == {*cli, late} and tab.filtered and not tab.has_older
    RunsState.set_filter.fn(tab, "via", "api")
    assert ids(tab) == []
    RunsState.clear_filters.fn(tab)
    RunsState.set_filter.fn(tab, "status", "failed")
    assert ids(tab) == []
    RunsState.set_filter.fn(tab, "status", "succeeded")
    assert len(ids(tab)) == PAGE_SIZE
    RunsState.set_filter.fn(tab, "who", str(operator.id))
    assert set(ids(tab)) <= set(mine) and len(ids(tab)) == PAGE_SIZE
    RunsState.set_filter.fn(tab, "range", "custom")
    RunsState.set_filter.fn(tab, "date_to", (datetime.now(UTC) - timedelta(days=3)).date().isoformat())
    assert ids(tab) == []
    RunsState.clear_filters.fn(tab)

    RunsState.set_search.fn(tab, "newslet")  # part of a workflow's name, any case
    assert set(ids(tab)) == {*cli, late}
    RunsState.set_search.fn(tab, mine[3][:8])  # the start of a run id
    assert mine[3] in ids(tab) and all(r.startswith(mine[3][:8]) for r in ids(tab))
    assert tab.rows[ids(tab).index(mine[3])].href == f"/runs/{mine[3]}"

    RunsState.clear_filters.fn(tab)
    RunsState.set_filter.fn(tab, "status", "bogus")  # refused with a toast, nothing changes
    assert tab.f_status == "all" and len(ids(tab)) == PAGE_SIZE

    # "Me" is the signed-in caller; the "started by" choices are the users who started runs.
    own = reflex_tab(RunsState, operator, "/runs", "/runs")
    RunsState.load.fn(own)
    RunsState.set_filter.fn(own, "who", "me")
    assert set(ids(own)) <= set(mine) and len(ids(own)) == PAGE_SIZE
    assert [o.label for o in own.who_options] == ["Me", operator.email]


def test_list_runs_search_matches_a_run_id_prefix_or_a_workflow_name_only(make_user) -> None:
    operator = make_user("operator")
    one, other = saved("Payroll 100% done_ok", quick("p")), saved("Other", quick("o"))
    first, second = run_saved(one, operator), run_saved(other, operator)
    assert [r.id for r in list_runs(search="100% DONE_")] == [first]  # % and _ are literal
    assert [r.id for r in list_runs(search="100%_done")] == []
    assert [r.id for r in list_runs(search=second)] == [second]
    assert [r.id for r in list_runs(search=second[:6].upper())] == [second]
    assert list_runs(search="zz-not-a-name") == []
    assert run_starters() == [(str(operator.id), operator.email)]


# ---- a run's page -------------------------------------------------------------------------------


def test_a_finished_runs_page_shows_steps_outputs_the_error_code_and_skipped_nodes(make_user) -> None:
    operator, viewer = make_user("operator"), make_user("viewer")
    workflow_id = saved("Adds then fails", failing())
    run_id = run_saved(workflow_id, operator, via="ui")
    assert wait_for_run(run_id).status == "failed"

    tab = reflex_tab(RunDetailState, viewer, f"/runs/{run_id}", "/runs/[run_id]")
    assert RunDetailState.load.fn(tab) is None  # a run that ended is not followed
    assert tab.loaded and not tab.not_found and not tab.active and not tab.can_cancel
    assert (tab.head.status, tab.head.workflow, tab.head.version) == ("failed", "Adds then fails", "v1")
    assert (tab.head.started_by, tab.head.started_via) == (operator.email, "editor")
    assert tab.head.editor_href == f"/workflows/{workflow_id}"
    cards = {card.node_id: card for card in tab.steps}
    assert [cards[n].status for n in ("START", "ADD", "QUERY")] == ["succeeded", "succeeded", "failed"]
    assert '"out": 5' in cards["ADD"].outputs and cards["ADD"].error == ""
    assert (cards["QUERY"].error_code, cards["QUERY"].error_field) == ("connection_unknown", "connection")
    assert tab.statuses == {"START": "succeeded", "ADD": "succeeded", "QUERY": "failed", "END": "skipped"}
    assert {n["id"] for n in tab.canvas_nodes} == {"START", "ADD", "QUERY", "END"} and len(
        tab.canvas_edges
    ) == 3
    assert len({(n["x"], n["y"]) for n in tab.canvas_nodes}) == 4  # no positions saved: laid out
    assert "workflow.step.failed" in [line.event_type for line in tab.events]

    RunDetailState.select.fn(tab, ["ADD"], [])
    assert [s.node_id for s in tab.shown_steps] == ["ADD"]
    RunDetailState.show_all_steps.fn(tab)
    assert len(tab.shown_steps) == 3


def test_an_unknown_or_malformed_run_id_shows_not_found(make_user) -> None:
    viewer = make_user("viewer")
    for wanted in (str(uuid.uuid4()), "not-a-run", "'; drop table runs; --"):
        tab = reflex_tab(RunDetailState, viewer, f"/runs/{wanted}", "/runs/[run_id]")
        RunDetailState.load.fn(tab)
        assert tab.loaded and tab.not_found and tab.error == "" and tab.steps == []
    assert get_run_detail("not-a-run") is None


def test_cancel_on_the_run_page_needs_an_operator_and_stops_the_run(make_user) -> None:
    operator, viewer = make_user("operator"), make_user("viewer")
    run_id = run_saved(saved("Waits", waiting()), operator)
    wait_for_step(run_id, "WAIT", "waiting")

    seen = reflex_tab(RunDetailState, viewer, f"/runs/{run_id}", "/runs/[run_id]")
    RunDetailState.load.fn(seen)
    assert seen.active and not seen.may_cancel and not seen.can_cancel
    RunDetailState.cancel.fn(seen)  # refused by `requires`: the run goes on
    assert get_run_detail(run_id).status == "running"

    tab = reflex_tab(RunDetailState, operator, f"/runs/{run_id}", "/runs/[run_id]")
    RunDetailState.load.fn(tab)
    assert tab.can_cancel and tab.statuses["WAIT"] == "waiting"
    RunDetailState.set_cancel_open.fn(tab, True)
    assert tab.cancel_open
    RunDetailState.cancel.fn(tab)
    assert wait_for_run(run_id).status == "cancelled"
    assert tab.head.status == "cancelled" and not tab.active and not tab.cancel_open and not tab.can_cancel
    with db_session() as session:
        entry = session.execute(
            select(AuditLog).where(AuditLog.target_id == run_id, AuditLog.action == "run.cancelled")
        ).scalar_one()
    assert entry.details["via"] == "ui" and entry.details["cancelled_by"] == f"user:{operator.id}"


def test_a_steps_progress_reports_reach_its_card_and_the_event_log(make_user, pg_url: str) -> None:
    operator = make_user("operator")
    run_id = run_saved(saved("Waits", waiting()), operator)
    step = wait_for_step(run_id, "WAIT", "waiting")
    ctx = StepContext(run_id=run_id, step_id=str(step["id"]), node_id="WAIT", node_type="delay",
                      attempt=step["attempt"])  # fmt: skip
    assert ctx.progress(0, 40, "starting")  # the first report is always written
    assert ctx.progress(40, 40, "all forty documents")  # so is the last
    with get_engine(pg_url).connect() as conn:
        written = conn.execute(
            select(Event.payload).where(Event.run_id == run_id, Event.event_type == "workflow.step.progress")
        ).scalars().all()  # fmt: skip
    assert [(p["data"]["done"], p["data"]["total"]) for p in written] == [(0, 40), (40, 40)]
    assert written[-1]["data"]["node_id"] == "WAIT" and written[-1]["data"]["step_id"] == str(step["id"])

    detail = get_run_detail(run_id)
    report = detail.progress[str(step["id"])]
    assert (report.done, report.total, report.note, report.fraction) == (40, 40, "all forty documents", 1.0)
    card = {c.node_id: c for c in run_detail_view.step_cards(detail)}["WAIT"]
    assert (card.progress_percent, card.progress_text) == (100, "40 / 40 · all forty documents")
    assert any(line.event_type == "workflow.step.progress" for line in run_detail_view.event_lines(detail))

    with get_engine(get_settings().database_url).begin() as conn:  # a report of an earlier attempt is stale
        conn.execute(text("UPDATE step_runs SET attempt = attempt + 1 WHERE id = :s"), {"s": step["id"]})
    card = {c.node_id: c for c in run_detail_view.step_cards(get_run_detail(run_id))}["WAIT"]
    assert (card.progress_percent, card.progress_text) == (-1, "")
