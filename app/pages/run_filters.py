"""The Runs page's filters: what each select holds, read from a link's query, and turned into the
arguments of engine.runs.list_runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.runs import STARTED_VIA

ANY = "all"  # a select's "no filter" value (a select item cannot have an empty value)
ME = "me"
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
VIA_LABELS = {"ui": "editor", "api": "API", "cli": "CLI", "trigger": "trigger", "mcp": "MCP"}
# Time range presets -> how far back; "custom" uses the from/to dates.
RANGES: dict[str, timedelta | None] = {
    ANY: None,
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "custom": None,
}
RANGE_LABELS = {
    ANY: "Any time", "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days",
    "custom": "Between dates…",
}  # fmt: skip
SEARCH_CHARS = 100


class FilterError(ValueError):
    """A filter value the page cannot use (a malformed date); the message says which and why."""


@dataclass(frozen=True)
class RunFilters:
    """What the Runs page is filtered by; ANY means "any"."""

    workflow: str = ANY  # a workflow id
    status: str = ANY
    via: str = ANY  # ui | api | cli | trigger
    trigger: str = ANY  # a trigger id (of the chosen workflow)
    who: str = ANY  # ME or a user id
    range: str = ANY  # a key of RANGES
    date_from: str = ""  # YYYY-MM-DD, with range "custom"
    date_to: str = ""  # YYYY-MM-DD (inclusive), with range "custom"
    search: str = ""  # a run id's start or part of a workflow's name

    @property
    def active(self) -> bool:
        """Whether anything narrows the list."""
        return self != RunFilters()

    def changed(self, name: str, value: str) -> RunFilters:
        """These filters with `name` set to `value` (a new workflow forgets the old one's trigger)."""
        if name not in FIELDS:
            raise FilterError(f"{name!r} is not a filter of the runs list")
        value = str(value or "")
        if name == "search":
            value = value.strip()[:SEARCH_CHARS]
        elif name in CHOICES and value not in CHOICES[name]:
            raise FilterError(f"{name}: {value!r} is not one of {', '.join(CHOICES[name])}")
        elif name in ("date_from", "date_to"):
            if value:
                _day(name.removeprefix("date_"), value)
        else:
            value = value or ANY
        updated = replace(self, **{name: value})
        if name in ("date_from", "date_to") and value:
            updated = replace(updated, range="custom")
        if name == "workflow":
            updated = replace(updated, trigger=ANY)
        if name == "range" and value != "custom":
            updated = replace(updated, date_from="", date_to="")
        return updated

    def query(self, user_id: str | None, now: datetime | None = None) -> dict[str, Any]:
        """The keyword arguments of engine.runs.list_runs for these filters (`user_id`: who ME is)."""
        args: dict[str, Any] = {}
        if self.workflow != ANY:
            args["workflow_id"] = self.workflow
        if self.status != ANY:
            args["status"] = self.status
        if self.via != ANY:
            args["started_via"] = self.via
        if self.trigger != ANY:
            args["trigger_id"] = self.trigger
        if self.who == ME:
            args["created_by"] = user_id or "nobody"  # no caller: a malformed id matches no run
        elif self.who != ANY:
            args["created_by"] = self.who
        if self.search:
            args["search"] = self.search
        args.update(self._times(now or datetime.now(UTC)))
        return args

    def _times(self, now: datetime) -> dict[str, datetime]:
        back = RANGES.get(self.range)
        if back is not None:
            return {"created_after": now - back}
        if self.range != "custom":
            return {}
        times: dict[str, datetime] = {}
        if self.date_from:
            times["created_after"] = datetime.combine(_day("from", self.date_from), time(), UTC)
        if self.date_to:
            times["created_before"] = datetime.combine(
                _day("to", self.date_to) + timedelta(days=1), time(), UTC
            )
        return times

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


FIELDS = tuple(RunFilters.__dataclass_fields__)
CHOICES: dict[str, tuple[str, ...]] = {
    "status": (ANY, *STATUSES),
    "via": (ANY, *STARTED_VIA),
    "range": tuple(RANGES),
}


def _day(which: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{which}: {text!r} is not a date (YYYY-MM-DD)") from None


def from_params(params: Mapping[str, Any]) -> RunFilters | None:
    """Filters named in a link's query (/runs?status=failed&workflow=<id>), None when it names none.

    Values that do not fit are dropped rather than refused: a stale link still opens the page.
    """
    filters, named = RunFilters(), False
    for name in FIELDS:
        value = params.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or value == "":
            continue
        try:
            filters, named = filters.changed(name, str(value)), True
        except FilterError:
            continue
    return filters if named else None
