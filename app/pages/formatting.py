"""How pages show times, ids and statuses (computed when a page loads, sent as plain strings)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

# Radix colour of each run/approval status; anything else is gray.
STATUS_COLORS: dict[str, str] = {
    "queued": "gray",
    "running": "blue",
    "waiting": "amber",
    "suspended": "amber",
    "pending": "amber",
    "succeeded": "green",
    "approved": "green",
    "failed": "red",
    "rejected": "red",
    "cancelled": "gray",
    "expired": "orange",
}


_UNITS = ((86400 * 30, "mo"), (86400, "d"), (3600, "h"), (60, "min"))


def status_color(status: str) -> str:
    """The badge colour for `status`."""
    return STATUS_COLORS.get(status, "gray")


def format_time(moment: datetime | None) -> str:
    """An absolute UTC time such as "2026-11-25 14:57 UTC", or "—"."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def time_ago(moment: datetime | None, now: datetime | None = None) -> str:
    """A relative time such as "3 min ago" or "in 2 h", or "—"."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        return "just now" if not future else "in under a minute"
    size, unit = next((s, u) for s, u in _UNITS if seconds >= s)
    amount = f"{int(seconds // size)} {unit}"
    return f"in {amount}" if future else f"{amount} ago"


def short_id(value: uuid.UUID | str | None) -> str:
    """The first 8 hex digits of an id, as people quote it."""
    return str(value)[:8] if value else "—"
