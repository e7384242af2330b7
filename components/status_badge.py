"""A run or step status as a coloured badge (the canvas nodes use the same colours in CSS)."""

from __future__ import annotations

import reflex as rx

STATUS_COLORS: dict[str, str] = {
    "queued": "gray",
    "running": "blue",
    "waiting": "amber",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "gray",
    "skipped": "gray",
}
STATUS_ICONS: dict[str, str] = {
    "queued": "clock",
    "running": "loader",
    "waiting": "hand",
    "succeeded": "circle-check",
    "failed": "circle-x",
    "cancelled": "ban",
    "skipped": "skip-forward",
}


def status_badge(status: rx.Var[str] | str, **props) -> rx.Component:
    """`status` as a soft badge in its colour (high contrast: small text must stay readable), with its icon."""
    status = rx.Var.create(status)
    color = rx.match(status, *STATUS_COLORS.items(), "gray")
    icon = rx.match(
        status,
        *[(name, rx.icon(icon, size=12)) for name, icon in STATUS_ICONS.items()],
        rx.icon("circle-dot", size=12),
    )
    return rx.badge(
        icon,
        status,
        color_scheme=color,
        variant="soft",
        high_contrast=True,
        radius="full",
        data_status=status,
        **props,
    )
