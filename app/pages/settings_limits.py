"""The Settings page's "Limits and retention" section: the form and what the next prune removes."""

from __future__ import annotations

import reflex as rx

from app.layout import error_callout
from app.pages.settings_limits_state import LimitsState as L
from app.pages.settings_limits_state import PruneRow
from components.data_table import table

_FIELDS = (
    ("max_concurrent_runs", "Runs at once", "more wait queued, in order"),
    ("runs_per_hour", "Runs per hour", "more are refused"),
    ("retention_days", "Keep runs (days)", "empty: the compliance default, or forever"),
    ("retention_keep_last", "Keep the last N per workflow", "empty: no count limit"),
    ("step_data_retention_days", "Keep step inputs/outputs (days)", "the run's summary stays"),
)


def _field(name: str, label: str, hint: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="medium", as_="label", html_for=f"limit-{name}"),
        rx.input(
            id=f"limit-{name}",
            value=getattr(L, name),
            on_change=lambda v: L.set_limit_field(name, v),
            placeholder="no limit",
            input_mode="numeric",
            width="10rem",
        ),  # fmt: skip
        rx.text(hint, size="1", color_scheme="gray"),
        spacing="1",
    )


def _prune_row(r: PruneRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(r.id[:8], href="/runs/" + r.id)),
        rx.table.cell(r.workflow),
        rx.table.cell(r.status),
        rx.table.cell(r.finished),
        rx.table.cell(r.reason),
    )


def limits_section() -> rx.Component:
    """Limits and retention of the current workspace, for its admins."""
    return rx.box(
        rx.cond(
            L.is_admin,
            rx.vstack(
                rx.heading("Limits and retention", size="4"),
                error_callout(L.limits_error),
                rx.flex(*[_field(*f) for f in _FIELDS], wrap="wrap", spacing="4"),
                rx.hstack(
                    rx.button("Save limits", on_click=L.save_limits, id="save-limits"),
                    rx.text(L.limits_saved, size="2", color_scheme="green"),
                    align="center",
                ),
                rx.text(
                    "Compliance (FLOWLOOM_GUARDRAILS): ", L.compliance_text, size="1", color_scheme="gray"
                ),
                rx.text("Runs are kept: ", L.effective_retention, size="2"),
                rx.text(
                    "The next prune deletes ",
                    L.prune_runs,
                    " run(s) (",
                    L.prune_by_age,
                    " by age, ",
                    L.prune_by_count,
                    " past the last N) and clears the inputs and outputs of ",
                    L.prune_steps,
                    " step(s).",
                    size="2",
                    id="prune-preview",
                ),  # fmt: skip
                rx.cond(
                    L.prune_runs > 0,
                    table(
                        ["Run", "Workflow", "Status", "Ended", "Why"], rx.foreach(L.prune_rows, _prune_row)
                    ),
                ),
                width="100%",
                margin_top="1.5rem",
            ),
        ),
        on_mount=L.load_limits,
        width="100%",
    )
