"""The Dashboard page: counts, and charts of a chosen period that link to the runs they show."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import error_callout, page, page_header
from app.pages.dashboard_state import PERIOD_LABELS, CircuitRow, SlowWorkflow, StatusCount, StatusLink
from app.pages.dashboard_state import DashboardState as S

# Chart colours per run status (Radix scale 9 of the badge colours in app/pages/formatting.py).
STATUS_FILLS = {
    "succeeded": "var(--green-9)", "failed": "var(--red-9)", "cancelled": "var(--gray-8)",
    "running": "var(--blue-9)", "queued": "var(--gray-6)",
}  # fmt: skip
CHART_HEIGHT = 220


def _stat(label: str, value: rx.Var, icon: str, href: str | rx.Var, element_id: str) -> rx.Component:
    return rx.link(
        rx.card(
            rx.hstack(
                rx.vstack(
                    rx.text(label, size="2", color=rx.color("gray", 11)),
                    rx.heading(value, size="7", weight="bold", id=element_id),
                    spacing="1",
                ),
                rx.spacer(),
                rx.center(
                    rx.icon(icon, size=20, color=rx.color("accent", 11)),
                    width="2.5rem",
                    height="2.5rem",
                    border_radius="var(--radius-3)",
                    background=rx.color("accent", 3),
                ),
                align="center",
            ),
            size="3",
        ),
        href=href,
        underline="none",
        color="inherit",
    )


def _status_line(item: StatusCount) -> rx.Component:
    return rx.hstack(
        rx.badge(item.status, color_scheme=item.color, variant="soft", radius="full"),
        rx.spacer(),
        rx.text(item.count, size="2", weight="medium"),
        width="100%",
        data_testid="status-count",
    )


def _runs_by_status() -> rx.Component:
    return rx.card(
        rx.heading("Runs by status (all time)", size="3", weight="medium", margin_bottom="0.75rem"),
        rx.cond(
            S.runs_by_status.length() > 0,
            rx.vstack(rx.foreach(S.runs_by_status, _status_line), spacing="2", width="100%"),
            rx.text("No runs yet.", size="2", color=rx.color("gray", 11)),
        ),
        size="3",
        width="100%",
        id="runs-by-status",
    )


def _chart_card(title: str, chart: rx.Component, link_text: str, href: rx.Var | str, element_id: str,
                *extra: rx.Component) -> rx.Component:  # fmt: skip
    return rx.card(
        rx.hstack(
            rx.heading(title, size="3", weight="medium"),
            rx.spacer(),
            rx.link(link_text, href=href, size="2", data_testid="chart-link"),
            align="center",
            margin_bottom="0.5rem",
        ),
        chart,
        *extra,
        size="2",
        width="100%",
        id=element_id,
    )


def _axes(data_key: str = "t") -> list[rx.Component]:
    return [
        rx.recharts.cartesian_grid(stroke_dasharray="3 3", stroke="var(--gray-5)"),
        rx.recharts.x_axis(data_key=data_key, tick={"fontSize": 11}),
        rx.recharts.y_axis(tick={"fontSize": 11}, allow_decimals=False, width=40),
        rx.recharts.graphing_tooltip(),
    ]


def _status_link(item: StatusLink) -> rx.Component:
    return rx.link(
        rx.badge(item.status, ": ", item.count, color_scheme=item.color, variant="soft", radius="full"),
        href=item.href,
        data_testid="status-link",
    )


def _runs_over_time() -> rx.Component:
    bars = [
        rx.recharts.bar(data_key=status, stack_id="runs", fill=fill, name=status, is_animation_active=False)
        for status, fill in STATUS_FILLS.items()
    ]
    chart = rx.recharts.bar_chart(*_axes(), *bars, rx.recharts.legend(), data=S.runs_series, height=CHART_HEIGHT,
                                  width="100%")  # fmt: skip
    links = rx.hstack(rx.foreach(S.status_links, _status_link), spacing="2", wrap="wrap", margin_top="0.5rem")
    return _chart_card(
        "Runs over time by status", chart, "Open these runs", S.period_runs_href, "chart-runs", links
    )


def _success_rate() -> rx.Component:
    chart = rx.recharts.line_chart(
        *_axes(),
        rx.recharts.line(
            data_key="rate",
            name="success %",
            stroke="var(--green-9)",
            connect_nulls=True,
            is_animation_active=False,
            dot=True,
        ),  # fmt: skip
        data=S.success_series,
        height=CHART_HEIGHT,
        width="100%",
    )
    return _chart_card(
        "Success rate (%)", chart, "Open the failed runs", S.failed_runs_href, "chart-success",
        rx.text("Over the period: ", rx.text.strong(S.success_rate, id="success-rate"), size="2"),
    )  # fmt: skip


def _step_durations() -> rx.Component:
    chart = rx.recharts.bar_chart(
        *_axes("node_type"),
        rx.recharts.bar(data_key="p50", name="p50 ms", fill="var(--accent-7)", is_animation_active=False),
        rx.recharts.bar(data_key="p95", name="p95 ms", fill="var(--accent-10)", is_animation_active=False),
        rx.recharts.legend(),
        data=S.duration_rows,
        height=CHART_HEIGHT,
        width="100%",
    )
    return _chart_card("Step duration by node type (p50 / p95)", chart, "Open these runs", S.period_runs_href,
                       "chart-durations")  # fmt: skip


def _slow_row(item: SlowWorkflow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(item.name, href=item.href, data_testid="slow-workflow")),
        rx.table.cell(item.runs),
        rx.table.cell(item.p95),
        rx.table.cell(item.longest),
    )


def _slowest() -> rx.Component:
    table = rx.cond(
        S.slowest.length() > 0,
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *(rx.table.column_header_cell(h) for h in ("Workflow", "Runs", "p95", "Longest"))
                )
            ),
            rx.table.body(rx.foreach(S.slowest, _slow_row)),
            size="1",
            width="100%",
        ),
        rx.text("No run ended in this period.", size="2", color=rx.color("gray", 11)),
    )
    return _chart_card("Slowest workflows", table, "Open these runs", S.period_runs_href, "chart-slowest")


def _waiting(key: str, name: str, title: str, now: rx.Component, href: rx.Var | str, element_id: str,
             color: str) -> rx.Component:  # fmt: skip
    chart = rx.recharts.area_chart(
        *_axes(),
        rx.recharts.area(
            data_key=key, name=name, stroke=color, fill=color, fill_opacity=0.3, is_animation_active=False
        ),  # fmt: skip
        data=S.waiting_series,
        height=CHART_HEIGHT - 40,
        width="100%",
    )
    return _chart_card(title, chart, "Open the running runs", href, element_id, now)


def _circuit_row(item: CircuitRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.code(item.destination)),
        rx.table.cell(rx.badge(item.state, color_scheme=item.color)),
        rx.table.cell(item.failures),
        rx.table.cell(item.opens_for),
        data_testid="circuit-row",
    )


def _circuits() -> rx.Component:
    """The outbound HTTP destinations' circuit breakers (open ones refuse requests before connecting)."""
    return rx.card(
        rx.heading("Circuit breakers", size="3", weight="medium", as_="h2", margin_bottom="0.5rem"),
        rx.cond(
            S.circuits.length() > 0,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *(
                            rx.table.column_header_cell(h)
                            for h in ("Destination", "State", "Failures in a row", "Open for")
                        )
                    )
                ),
                rx.table.body(rx.foreach(S.circuits, _circuit_row)),
                size="1",
                width="100%",
            ),
            rx.text(
                "Every destination answers: no circuit is open or counting failures.",
                size="2",
                color=rx.color("gray", 11),
            ),  # fmt: skip
        ),
        width="100%",
        margin_bottom="1rem",
        id="dashboard-circuits",
    )


def _period_picker() -> rx.Component:
    return rx.segmented_control.root(
        *(rx.segmented_control.item(label, value=key) for key, label in PERIOD_LABELS.items()),
        value=S.period,
        on_change=S.set_period,
        id="dashboard-period",
    )


def _charts() -> rx.Component:
    queue_now = rx.text("Now: ", rx.text.strong(S.queue_depth, id="queue-depth"), " queued; oldest ", S.oldest_queued,
                        size="2")  # fmt: skip
    approvals_now = rx.text("Now: ", rx.text.strong(S.pending_approvals, id="approvals-waiting"), " waiting; oldest ",
                            S.oldest_approval, " ", rx.link("Open the inbox", href=routes.INBOX, underline="always"), size="2")  # fmt: skip
    return rx.grid(
        _runs_over_time(),
        _success_rate(),
        _step_durations(),
        _slowest(),
        _waiting(
            "queued",
            "steps queued",
            "Queue depth",
            queue_now,
            S.running_runs_href,
            "chart-queue",
            "var(--blue-9)",
        ),
        _waiting(
            "approvals",
            "approvals waiting",
            "Approvals waiting",
            approvals_now,
            S.running_runs_href,
            "chart-approvals",
            "var(--amber-9)",
        ),  # fmt: skip
        columns=rx.breakpoints(initial="1", lg="2"),
        spacing="4",
        width="100%",
        margin_bottom="1rem",
    )


def _charts_and_circuits() -> rx.Component:
    return rx.fragment(_charts(), _circuits())


@page(route=routes.DASHBOARD, title="Dashboard", on_load=S.load)
def dashboard_page() -> rx.Component:
    """Counts at a glance, and charts of the chosen period."""
    return rx.box(
        page_header("Dashboard", "Workflows, runs and decisions at a glance."),
        error_callout(S.error),
        rx.cond(
            S.error == "",
            rx.fragment(
                rx.grid(
                    _stat("Workflows", S.workflows, "workflow", routes.WORKFLOWS, "stat-workflows"),
                    _stat("Runs", S.runs, "play", routes.RUNS, "stat-runs"),
                    _stat("Pending approvals", S.pending_approvals, "inbox", routes.INBOX, "stat-approvals"),
                    columns=rx.breakpoints(initial="1", md="3"),
                    spacing="4",
                    width="100%",
                    margin_bottom="1rem",
                ),
                rx.hstack(
                    _period_picker(),
                    rx.spacer(),
                    rx.text(
                        S.period_runs,
                        " runs in ",
                        S.period_label.lower(),
                        " · refreshed ",
                        S.refreshed_at,
                        size="1",
                        color=rx.color("gray", 11),
                        id="dashboard-refreshed",
                    ),  # fmt: skip
                    align="center",
                    width="100%",
                    margin_bottom="1rem",
                    wrap="wrap",
                ),
                _charts_and_circuits(),
                _runs_by_status(),
            ),
        ),
        width="100%",
    )
