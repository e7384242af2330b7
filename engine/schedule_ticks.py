"""Which ticks of a schedule are due, which of them fire, and when the next ones come. Pure: no I/O.

The rules (docs/triggers.md, "Schedule"):

- A trigger's `next_fire_at` is the earliest tick that may still fire. At `now`, the *due* ticks
  are the cron ticks in [next_fire_at, now].
- The latest due tick is the *current* one: its successor has not come yet, so it is less than one
  interval late, and it always fires. Every earlier due tick is more than one interval late: it
  was *missed* (the scheduler was down, the database was unreachable).
- `missed="skip"` fires only the current tick; `missed="catch_up"` also fires the most recent
  `catch_up_max` missed ticks, oldest first (so a week-long outage of an every-minute schedule
  replays at most `catch_up_max` ticks, not ten thousand).
- Time zones: ticks are computed in the schedule's zone (croniter over zoneinfo). A local time that
  a DST change skips fires when the clocks jump; a local time that happens twice (the autumn change)
  fires once, at its first occurrence, unless the schedule is hourly or finer (hour field `*`),
  where each real hour keeps its ticks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from engine.trigger_config import ScheduleConfig, next_ticks

# How many ticks `upcoming` looks through to find `count` that are not repeats (a repeat is rare).
_LOOKAHEAD = 8
# Missed ticks that do not fire are counted (for the log) up to this many.
COUNT_SKIPPED_UP_TO = 1000


@dataclass(frozen=True)
class DueTicks:
    """What a scheduler does for one trigger at one moment."""

    fire: list[datetime] = field(default_factory=list)  # the ticks to fire, oldest first (UTC)
    skipped: int = 0  # missed ticks found but not fired (a lower bound when there were very many)
    next_fire_at: datetime | None = None  # the first tick after `now`


def tick_key(tick: datetime) -> str:
    """A tick's delivery key and `scheduled_at` value: its UTC time, e.g. 2024-05-01T03:00:00Z."""
    return tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_repeat(config: ScheduleConfig, tick: datetime) -> bool:
    """True for the second occurrence of a local time the autumn DST change repeats, on a schedule
    that is not hourly or finer (its first occurrence already fired)."""
    if config.cron.split()[1] == "*":
        return False
    local = tick.astimezone(ZoneInfo(config.timezone))
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def upcoming(config: ScheduleConfig, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` ticks (UTC) strictly after `after`, DST repeats left out."""
    found: list[datetime] = []
    cursor = after
    while len(found) < count:
        batch = next_ticks(config, cursor, max(count - len(found), 1) + _LOOKAHEAD)
        found.extend(t for t in batch if not is_repeat(config, t))
        cursor = batch[-1]
    return found[:count]


def _latest_at_or_before(
    config: ScheduleConfig, since: datetime, now: datetime, limit: int
) -> list[datetime]:
    """Up to `limit` ticks in [since, now], newest first, DST repeats left out."""
    zone = ZoneInfo(config.timezone)
    # croniter's get_prev is strictly before its start; ticks are whole minutes, so starting one
    # second after `now` includes a tick at `now` itself (a later one is dropped below).
    it = croniter(config.cron, (now + timedelta(seconds=1)).astimezone(zone))
    found: list[datetime] = []
    while len(found) < limit:
        tick = it.get_prev(datetime).astimezone(UTC)
        if tick < since:
            break
        if tick <= now and not is_repeat(config, tick):
            found.append(tick)
    return found


def due(config: ScheduleConfig, next_fire_at: datetime, now: datetime) -> DueTicks:
    """The ticks to fire at `now` for a trigger whose earliest unfired tick is `next_fire_at`."""
    wanted = 1 + (config.catch_up_max if config.missed == "catch_up" else 0)
    newest_first = _latest_at_or_before(config, next_fire_at, now, wanted + COUNT_SKIPPED_UP_TO)
    fire = list(reversed(newest_first[:wanted]))
    skipped = max(len(newest_first) - wanted, 0)
    return DueTicks(fire=fire, skipped=skipped, next_fire_at=upcoming(config, now)[0])
