"""Where a page takes files: a dashed drop zone that also opens the file picker on a click."""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.event import EventType


def file_drop(
    upload_id: str,
    hint: str,
    limit: str,
    accept: dict[str, list[str]],
    on_drop: EventType[Any],
    multiple: bool,
) -> rx.Component:
    """A drop zone for files of the `accept` types: an upload icon, `hint` and the size `limit` below it."""
    return rx.upload.root(
        rx.vstack(
            rx.icon("upload", size=20),
            rx.text(hint, size="2"),
            rx.text(limit, size="1", color=rx.color("gray", 11)),
            align="center",
            spacing="1",
            padding="1.25rem",
            width="100%",
            border=f"1px dashed {rx.color('gray', 7)}",
            border_radius="var(--radius-3)",
            cursor="pointer",
        ),
        id=upload_id,
        multiple=multiple,
        accept=accept,
        on_drop=on_drop,
        width="100%",
    )
