"""The Dashboard page: how much there is and what waits."""

from __future__ import annotations

import reflex as rx

from app import routes
from app.layout import error_callout, page, page_header
from app.pages.dashboard_state import DashboardState as S
from app.pages.dashboard_state import StatusCount


def _stat(label: str, value: rx.Var[int], icon: str, href: str, element_id: str) -> rx.Component:
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
        rx.heading("Runs by status", size="3", weight="medium", margin_bottom="0.75rem"),
        rx.cond(
            S.runs_by_status.length() > 0,
            rx.vstack(rx.foreach(S.runs_by_status, _status_line), spacing="2", width="100%"),
            rx.text("No runs yet.", size="2", color=rx.color("gray", 11)),
        ),
        size="3",
        width="100%",
        id="runs-by-status",
    )


@page(route=routes.DASHBOARD, title="Dashboard", on_load=S.load)
def dashboard_page() -> rx.Component:
    """Counts at a glance."""
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
                _runs_by_status(),
            ),
        ),
        width="100%",
    )
