"""The callout of a background job a page started (converting a model, indexing documents): what it
does and how far the worker got."""

from __future__ import annotations

import reflex as rx


def job_progress(prefix: str, title: rx.Var[str], percent: rx.Var[int], message: rx.Var[str]) -> rx.Component:
    """`title` over a progress bar at `percent` and the worker's last `message`; ids start with `prefix`."""
    return rx.callout.root(
        rx.callout.icon(rx.icon("loader")),
        rx.vstack(
            rx.text(title, size="2", weight="medium"),
            rx.progress(value=percent, max=100, width="100%", id=f"{prefix}-job-progress"),
            rx.text(message, size="1", color=rx.color("gray", 11), id=f"{prefix}-job-message", role="status"),
            spacing="2",
            width="100%",
        ),
        margin_bottom="1rem",
        width="100%",
        id=f"{prefix}-job",
    )
